"""A device's budget for one more model (limit by id, by kind, or what the device reports
free less the reserve) and a model's estimated bytes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hfserve.backends.placement import BackendOptions, Placement
from hfserve.errors import MemoryExhausted
from hfserve.hardware import Device
from hfserve.model_config import ModelConfig
from hfserve.runtime.lifecycle import memory_budget
from hfserve.runtime.lifecycle.entry import ModelEntry
from hfserve.runtime.lifecycle.footprint import FIXED_HEADROOM, HEADROOM, estimate
from hfserve.runtime.lifecycle.memory_budget import MemoryBudget
from hfserve.runtime.lifecycle.placement import Choice
from hfserve.types import Family, ModelSpec, ModelState, Task

MIB = 2**20


def choice(device_id: str = "cuda:0", kind: str = "cuda") -> Choice:
    return Choice(device_id, Placement(device=device_id,
                                       options=BackendOptions(device_kind=kind)), "")


def resident(name: str, size: int, device_id: str = "cuda:0", used: float = 0.0,
             pinned: bool = False, busy: int = 0) -> ModelEntry:
    entry = ModelEntry(config=ModelConfig(source=name, pinned=pinned), name=name)
    entry.state, entry.device_id, entry.resident_bytes = ModelState.READY, device_id, size
    entry.last_used, entry.busy = used, busy
    return entry


def loading(name: str, size: int) -> ModelEntry:
    entry = ModelEntry(config=ModelConfig(source=name), name=name)
    entry.estimated_bytes = size
    return entry


def test_a_limit_by_device_id_counts_the_models_on_that_device() -> None:
    budget = MemoryBudget({"cuda:0": 300 * MIB}, reserve=0)
    others = [resident("old", 100 * MIB, used=1), resident("new", 100 * MIB, used=2),
              resident("elsewhere", 500 * MIB, device_id="cuda:1")]
    assert budget.free(choice(), others) == (100 * MIB, False)
    victims = budget.evictions(loading("x", 150 * MIB), choice(), others)
    assert [v.name for v in victims] == ["old"]


def test_busy_models_are_waited_for_not_evicted() -> None:
    budget = MemoryBudget({"cuda": 200 * MIB}, reserve=0)
    others = [resident("busy", 150 * MIB, busy=1)]
    with pytest.raises(MemoryExhausted):
        budget.evictions(loading("x", 100 * MIB), choice(), others)
    assert [v.name for v in budget.evictions(loading("x", 100 * MIB), choice(), others,
                                             busy_too=True)] == ["busy"]


def test_without_a_limit_the_device_reports_free_less_the_reserve(monkeypatch) -> None:
    gpu = Device(kind="cuda", index=0, name="GPU", memory_total=1000 * MIB,
                 memory_free=400 * MIB, dtypes=("float32",))
    monkeypatch.setattr(memory_budget, "detect", lambda: [gpu])
    monkeypatch.setattr(memory_budget, "refresh_memory", lambda device: device)
    budget = MemoryBudget({}, reserve=100 * MIB)
    assert budget.free(choice(), []) == (300 * MIB, False)
    assert budget.evictions(loading("x", 250 * MIB), choice(), []) == []
    with pytest.raises(MemoryExhausted, match="needs 350.0 MiB, 300.0 MiB free"):
        budget.evictions(loading("x", 350 * MIB), choice(), [])


def test_an_unknown_device_is_not_checked(monkeypatch) -> None:
    monkeypatch.setattr(memory_budget, "detect", lambda: [])
    assert MemoryBudget({}, 0).evictions(loading("x", 10**15), choice(), []) == []


def spec(folder: Path, **kw) -> ModelSpec:
    return ModelSpec(name="m", source=str(folder), path=folder, architecture="BertModel",
                     model_type="bert", family=Family.ENCODER_ONLY, task=Task.EMBEDDING,
                     tasks=(Task.EMBEDDING,), **kw)


def test_the_estimate_scales_the_weight_files_to_the_dtype(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\0" * (10 * MIB))
    (tmp_path / "README.md").write_text("not weights")
    s = spec(tmp_path, checkpoint_dtype="float32")
    assert estimate(s) == int(10 * MIB * (1 + HEADROOM)) + FIXED_HEADROOM
    assert estimate(s, "float16") == int(5 * MIB * (1 + HEADROOM)) + FIXED_HEADROOM


def test_the_estimate_counts_a_generative_models_kv_cache(tmp_path: Path) -> None:
    config = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
              "num_key_value_heads": 2}
    (tmp_path / "config.json").write_text(json.dumps(config))
    gen = ModelSpec(name="g", source=str(tmp_path), path=tmp_path, architecture="Llama",
                    model_type="llama", family=Family.DECODER_ONLY,
                    task=Task.TEXT_GENERATION, tasks=(Task.TEXT_GENERATION,), config=config,
                    max_context=1024, checkpoint_dtype="float32")
    kv_one = 2 * 2 * 32 * 1024 * 4          # K and V, layers, kv width, tokens, bytes
    assert estimate(gen, sequences=1) == FIXED_HEADROOM + kv_one
    assert estimate(gen, sequences=4) == FIXED_HEADROOM + 4 * kv_one


def test_entries_start_unloaded_and_recently_used() -> None:
    entry = loading("x", 1)
    assert entry.state == ModelState.UNLOADED and entry.busy == 0
    assert entry.last_used <= time.monotonic()
    assert not entry.holds_readiness()
