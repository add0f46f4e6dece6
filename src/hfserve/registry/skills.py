"""The task -> skill table. Entries are import paths so the registry never imports the heavy
skill modules; the table is open: ``register`` adds or replaces an entry (plugin skills)."""

from __future__ import annotations

from hfserve.types import Task

SKILLS: dict[Task, str] = {
    Task.EMBEDDING: "hfserve.skills.embedding:EmbeddingSkill",
    Task.FEATURE_EXTRACTION: "hfserve.skills.embedding:EmbeddingSkill",
    Task.TEXT_GENERATION: "hfserve.skills.generation:GenerationSkill",
}


def register(task: Task, target: str) -> None:
    """Serve ``task`` with the skill class at ``target`` ("package.module:Class")."""
    if ":" not in target:
        raise ValueError(f"skill target must look like 'module:Class', got {target!r}")
    SKILLS[Task(task)] = target


def skill_target(task: Task) -> str | None:
    return SKILLS.get(task)


def served_tasks() -> set[Task]:
    return set(SKILLS)
