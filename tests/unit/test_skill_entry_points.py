"""Skills from outside the package: an installed distribution's ``hfserve.skills`` entry
points and the ``skills:`` setting register before the built-in skills of their task."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfserve.config import Settings
from hfserve.registry import skills
from hfserve.runtime.lifecycle.skill_table import skill_classes
from hfserve.types import Task

SKILL_MODULE = '''
from hfserve.skills.base import BatchSkill
from hfserve.types import Task


class OuterSkill(BatchSkill):
    task = Task.TEXT_CLASSIFICATION
'''


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> dict:
    copy = dict(skills.SKILLS)
    monkeypatch.setattr(skills, "SKILLS", copy)
    return copy


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution on sys.path offering one skill through its entry points."""
    (tmp_path / "outer_skills.py").write_text(SKILL_MODULE)
    info = tmp_path / "outer_skills-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: outer-skills\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[hfserve.skills]\ntext-classification = outer_skills:OuterSkill\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_installed_entry_point_serves_its_task_first(table: dict, installed: Path) -> None:
    assert skills.register_installed() == ["text-classification=outer_skills:OuterSkill"]
    classes = skill_classes(Task.TEXT_CLASSIFICATION)
    assert classes[0].__name__ == "OuterSkill"
    assert classes[1].__name__ == "ClassificationSkill"     # the built-in stays as fallback
    assert skill_classes(Task.EMBEDDING)[0].__name__ == "EmbeddingSkill"


def test_the_skills_setting_registers_in_its_order(table: dict, installed: Path) -> None:
    settings = Settings(skills={"text-classification": ["outer_skills:OuterSkill",
                                                        "hfserve.skills.embedding:EmbeddingSkill"]})
    skills.register_all({t.value: v for t, v in settings.skills.items()})
    names = [c.__name__ for c in skill_classes(Task.TEXT_CLASSIFICATION)]
    assert names == ["OuterSkill", "EmbeddingSkill", "ClassificationSkill"]


def test_a_bad_skills_setting_is_refused() -> None:
    with pytest.raises(ValueError):
        Settings(skills={"no-such-task": "x:Y"})
    with pytest.raises(ValueError, match="module:Class"):
        skills.register_all({"text-classification": "no_colon"})
