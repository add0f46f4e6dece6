"""The skill classes registered for a task, imported on first use."""

from __future__ import annotations

import importlib

from hfserve.errors import UnsupportedTask
from hfserve.registry.skills import skill_targets
from hfserve.skills.base import Skill
from hfserve.types import Task


def skill_classes(task: Task) -> list[type[Skill]]:
    """The skills registered for ``task``, in preference order."""
    targets = skill_targets(task)
    if not targets:
        raise UnsupportedTask(f"no skill serves task {task.value!r} yet", param="model")
    classes = []
    for target in targets:
        module, _, name = target.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes
