"""Where a model registered at run time may come from: a local folder or file under one of
the configured model roots, resolved with realpath first so that ``..`` and symlinks that
lead out of a root are refused."""

from __future__ import annotations

import os
from pathlib import Path

from hfserve.errors import Forbidden, InvalidRequest


def within_roots(source: str, roots: list[Path]) -> Path:
    """The resolved local path of ``source``; InvalidRequest (400) when it is not an
    existing local path, Forbidden (403) when it lies outside every root."""
    if not source or "://" in source or not os.path.isabs(source):
        raise InvalidRequest("source must be an absolute local path under a model root",
                             param="source")
    if not roots:
        raise Forbidden("no model roots are configured: registering models is off "
                        "(set model_roots or model_dirs)", param="source")
    real = Path(os.path.realpath(source))
    for root in roots:
        base = Path(os.path.realpath(Path(root).expanduser()))
        if real == base or base in real.parents:
            if not real.exists():
                raise InvalidRequest("source does not exist", param="source")
            return real
    raise Forbidden("source is outside the model roots", param="source")
