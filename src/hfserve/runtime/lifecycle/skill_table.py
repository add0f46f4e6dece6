"""The skill classes registered for a task, imported on first use, and those serving one
model: a skill file of the operator's where one names it (``hfserve.plugins``), else its
task's."""

from __future__ import annotations

import importlib

from hfserve.errors import UnsupportedTask
from hfserve.registry.skills import skill_targets
from hfserve.skills.base import Skill
from hfserve.types import ModelSpec, Task


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


def classes_for(spec: ModelSpec) -> list[type[Skill]]:
    """The skills that may serve this model, in preference order."""
    from hfserve.plugins import plugin_classes

    found = plugin_classes(spec.options, spec.model_type, spec.name)
    return found if found is not None else skill_classes(spec.task)
