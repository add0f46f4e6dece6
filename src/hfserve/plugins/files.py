"""Finding and importing skill files. Plugins are code, so only the folder the operator
names (``skills_dir``) is ever read, and a model names a file in it by its stem alone."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from hfserve.errors import InvalidRequest

_folder: Path | None = None
_modules: dict[tuple[Path, int], ModuleType] = {}
_lock = threading.Lock()


def use_folder(folder: Path | None) -> None:
    """The skills folder of this server (None: plugins off)."""
    global _folder
    _folder = Path(folder).expanduser().resolve() if folder else None


def folder() -> Path | None:
    return _folder


def skill_file(options: dict[str, Any], model_type: str, name: str) -> Path | None:
    """The skill file serving a model: the one its ``skill`` names, else
    ``hf_<model_type>.py`` where the folder has it; None when no plugin serves it."""
    wanted = options.get("skill")
    if wanted:
        if _folder is None:
            raise InvalidRequest(f"model {name!r} names skill {wanted!r}, but the server has no "
                                 "skills_dir", param="skill")
        path = _folder / f"{wanted}.py"
        if not path.is_file():
            raise InvalidRequest(f"skills_dir has no {wanted}.py for model {name!r}",
                                 param="skill")
        return path
    if _folder is None or not model_type:
        return None
    path = _folder / f"hf_{re.sub(r'[^A-Za-z0-9_]', '_', model_type)}.py"
    return path if path.is_file() else None


def load_module(path: Path) -> ModuleType:
    """The skill file imported (once per version of the file) under a private name."""
    key = (path, path.stat().st_mtime_ns)
    with _lock:
        if key not in _modules:
            name = f"hfserve_skill_{path.stem}_{len(_modules)}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise InvalidRequest(f"cannot import skill file {path.name}", param="skill")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module       # dataclasses and pickling look modules up
            spec.loader.exec_module(module)
            _modules[key] = module
        return _modules[key]
