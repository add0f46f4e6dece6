"""Where a LoRA adapter's files may come from: a local folder holding peft's
``adapter_config.json``, resolved with realpath and kept under the model roots
(``roots.within_roots``), as a model registered at run time is."""

from __future__ import annotations

import os
from pathlib import Path

from hfserve.errors import InvalidRequest
from hfserve.registry.roots import within_roots


def resolve(path: str, roots: list[Path], *, need_roots: bool = True,
            param: str = "path") -> Path:
    """The adapter folder ``path`` names. One added at run time (``need_roots``) must lie
    under a model root; one in the configuration file too where roots are configured (the
    operator wrote it, so without roots any local folder is taken; there ``~`` is expanded
    and a relative path starts at the working directory)."""
    if not need_roots:
        path = os.path.abspath(os.path.expanduser(path))
    real = within_roots(path, roots, param) if roots or need_roots else \
        Path(os.path.realpath(path))
    if not (real / "adapter_config.json").is_file():
        # The path is the client's own: the message does not echo it.
        raise InvalidRequest(f"{param} is not a LoRA adapter folder (no adapter_config.json "
                             "from peft's save_pretrained)", param=param)
    return real


def resolve_all(adapters: dict[str, str], roots: list[Path]) -> dict[str, str]:
    """A model's configured ``adapters`` with their folders resolved."""
    return {name: str(resolve(path, roots, need_roots=False, param=f"adapters.{name}"))
            for name, path in adapters.items()}
