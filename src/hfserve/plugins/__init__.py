"""Skill files from an operator's folder: ``hfserve serve --skills-dir DIR``.

A file is either a hfserve skill (a ``Skill`` subclass defined in it, as ``hfserve skill
new`` writes them) or a skill file in the seed ecosystem's format (``hf_<name>`` classes),
served through ``adapter``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from hfserve.errors import UnsupportedTask
from hfserve.plugins.adapter import EMBEDDING_TASKS, SeedEmbeddingSkill, seed_class, seed_tasks
from hfserve.plugins.files import folder, load_module, skill_file, use_folder
from hfserve.skills.base import Skill

__all__ = ["folder", "plugin_classes", "use_folder"]

_adapters: dict[Path, type[Skill]] = {}


def _own_skills(module: Any) -> list[type[Skill]]:
    return [cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, Skill) and cls.__module__ == module.__name__
            and not inspect.isabstract(cls)]


def plugin_classes(options: dict[str, Any], model_type: str, name: str
                   ) -> list[type[Skill]] | None:
    """The skill classes a skill file gives this model; None when no file serves it."""
    path = skill_file(options, model_type, name)
    if path is None:
        return None
    module = load_module(path)
    own = _own_skills(module)
    if own:
        for cls in own:     # a model process imports its skill by module path: files have none
            cls.own_process = False
        return own
    cls = seed_class(module, path.stem)
    if cls is None:
        raise UnsupportedTask(f"skill file {path.name} defines neither a Skill subclass nor a "
                              f"class {path.stem}", param="skill")
    tasks = seed_tasks(cls)
    if not tasks & set(EMBEDDING_TASKS):
        raise UnsupportedTask(f"skill file {path.name} makes handlers for "
                              f"{', '.join(sorted(tasks)) or 'no task'}; seed-format files are "
                              "served for text embeddings", param="skill")
    if path not in _adapters:
        _adapters[path] = type(f"Seed_{path.stem}", (SeedEmbeddingSkill,), {"plugin_file": path})
    return [_adapters[path]]
