"""hfserve profile: measures a skill on each device and stores what placement reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hfserve.backends.placement import Placement
from hfserve.hardware import Device
from hfserve.hardware.profiles import ProfileStore
from hfserve.model_config import ModelConfig
from hfserve.registry import skills as skill_table
from hfserve.runtime.lifecycle import placement, profiler
from hfserve.skills.base import BatchSkill, Prepared
from hfserve.types import Task

LOADED: list[str] = []


class CountingSkill(BatchSkill):
    task: ClassVar[Task] = Task.EMBEDDING

    def load(self, where: Placement) -> None:
        LOADED.append(where.device)
        self.placement = where

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        return Prepared(payload=item, cost=len(item.split()))

    def run_batch(self, items: list[Prepared]) -> list[Any]:
        return [len(p.payload) for p in items]


@pytest.fixture
def model(tmp_path: Path, monkeypatch) -> ModelConfig:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 8,
         "num_hidden_layers": 1, "vocab_size": 50}))
    monkeypatch.setitem(skill_table.SKILLS, Task.EMBEDDING,
                        (f"{__name__}:CountingSkill",))
    monkeypatch.setattr(placement, "detect", lambda: [
        Device(kind="cpu", index=None, name="CPU", memory_total=2**34, memory_free=2**33)])
    LOADED.clear()
    return ModelConfig(source=str(folder))


def test_profile_measures_and_stores(model: ModelConfig, tmp_path: Path) -> None:
    lines: list[str] = []
    results = profiler.profile(model, ["cpu", "cuda"], tmp_path / "cache", seconds=0.05,
                               log=lines.append)
    assert [r.device for r in results] == ["cpu"]
    assert results[0].throughput > 0 and results[0].unit == "items/s"
    assert LOADED == ["cpu"]
    assert any(line.startswith("cuda: skipped") for line in lines)
    stored = ProfileStore(tmp_path / "cache" / "profiles.sqlite").scores(results[0].model)
    assert stored == {"cpu": pytest.approx(results[0].throughput)}
