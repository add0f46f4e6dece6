"""Where a model registered at run time may come from: a local folder or file under one of
the configured model roots, resolved with realpath first so that ``..`` and symlinks that
lead out of a root are refused."""

from __future__ import annotations

import os
from pathlib import Path

from hfserve.errors import Forbidden, InvalidRequest


def within_roots(source: str, roots: list[Path], param: str = "source") -> Path:
    """The resolved local path of ``source``; InvalidRequest (400) when it is not an
    existing local path, Forbidden (403) when it lies outside every root. ``param``: the
    field that gave it, as errors name it."""
    if not source or "://" in source or not os.path.isabs(source):
        raise InvalidRequest(f"{param} must be an absolute local path under a model root",
                             param=param)
    if not roots:
        raise Forbidden("no model roots are configured: registering models is off "
                        "(set model_roots or model_dirs)", param=param)
    real = Path(os.path.realpath(source))
    for root in roots:
        base = Path(os.path.realpath(Path(root).expanduser()))
        if real == base or base in real.parents:
            if not real.exists():
                raise InvalidRequest(f"{param} does not exist", param=param)
            return real
    raise Forbidden(f"{param} is outside the model roots", param=param)
