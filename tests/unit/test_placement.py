"""Placement: backends per device, profiles steering the order, memory budgets, exclusions."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from hfserve.errors import InvalidRequest
from hfserve.hardware import Device, quota, system
from hfserve.hardware.profiles import Measurement, ProfileStore
from hfserve.model_config import ModelConfig, parse_size
from hfserve.registry.spec import checkpoint_dtype
from hfserve.runtime.lifecycle import placement
from hfserve.skills.base import Skill
from hfserve.types import Family, ModelSpec, Task

GIB = 2**30


class TorchOnly(Skill):
    task: ClassVar[Task] = Task.EMBEDDING

    def load(self, placement) -> None:  # pragma: no cover - never loaded here
        raise AssertionError


class Everywhere(TorchOnly):
    backends: ClassVar[tuple[str, ...]] = ("torch", "openvino", "onnxruntime")


MACHINE = [
    Device(kind="cuda", index=0, name="GPU", memory_total=8 * GIB, memory_free=8 * GIB,
           dtypes=("float32", "bfloat16", "float16")),
    Device(kind="openvino", index=None, name="OV CPU", dtypes=("float32", "bfloat16"),
           details={"openvino_device": "CPU"}),
    Device(kind="cpu", index=None, name="CPU", memory_total=32 * GIB, memory_free=30 * GIB,
           dtypes=("float32",)),
]


@pytest.fixture(autouse=True)
def machine(monkeypatch):
    monkeypatch.setattr(placement, "detect", lambda: MACHINE)


def spec(tmp_path: Path, checkpoint: str | None = None) -> ModelSpec:
    return ModelSpec(name="m", source=str(tmp_path), path=tmp_path, architecture="BertModel",
                     model_type="bert", family=Family.ENCODER_ONLY, task=Task.EMBEDDING,
                     tasks=(Task.EMBEDDING,), parameters=100_000_000,
                     checkpoint_dtype=checkpoint)


def ids(chain) -> list[tuple[str, str]]:
    return [(c.device_id, c.placement.backend) for c in chain]


def test_devices_without_a_usable_backend_are_left_out(tmp_path: Path) -> None:
    chain = placement.choices(spec(tmp_path), ModelConfig(source="x"), [TorchOnly], tmp_path)
    assert ids(chain) == [("cuda:0", "torch"), ("cpu", "torch")]
    chain = placement.choices(spec(tmp_path), ModelConfig(source="x"), [Everywhere], tmp_path)
    assert ids(chain) == [("cuda:0", "torch"), ("openvino:CPU", "openvino"), ("cpu", "torch")]


def test_an_asked_backend_narrows_the_chain(tmp_path: Path) -> None:
    mc = ModelConfig(source="x", backend="onnxruntime")
    chain = placement.choices(spec(tmp_path), mc, [Everywhere], tmp_path)
    assert ids(chain) == [("cuda:0", "onnxruntime"), ("cpu", "onnxruntime")]


def test_profiles_put_the_fastest_measured_device_first(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles.sqlite")
    key = placement.profile_key(spec(tmp_path))
    store.record(Measurement(key, "openvino:CPU", "openvino", 900.0, "items/s", 30.0, 1))
    store.record(Measurement(key, "cuda:0", "torch", 400.0, "items/s", 5.0, 1))
    assert store.scores(key) == {"openvino:CPU": 900.0, "cuda:0": 400.0}
    assert [m.device for m in store.measurements(key)] == ["openvino:CPU", "cuda:0"]
    chain = placement.choices(spec(tmp_path), ModelConfig(source="x"), [Everywhere], tmp_path)
    assert ids(chain)[0] == ("openvino:CPU", "openvino")
    assert "fastest" in chain[0].reason or "measured" in chain[0].reason


def test_memory_budget_and_exclusions(tmp_path: Path) -> None:
    mc = ModelConfig(source="x")
    chain = placement.choices(spec(tmp_path), mc, [TorchOnly], tmp_path,
                              memory_limits={"cuda:0": parse_size("100MiB")})
    assert ids(chain) == [("cpu", "torch")]
    chain = placement.choices(spec(tmp_path), mc, [TorchOnly], tmp_path,
                              exclude=frozenset({"cuda:0"}))
    assert ids(chain) == [("cpu", "torch")]


def test_placement_carries_threads_dtype_and_options(tmp_path: Path) -> None:
    mc = ModelConfig(source="x", threads=3, int8=True, prefix_caching=False,
                     max_prefill_tokens=256, prefill_graphs=False, decode_steps=2)
    first = placement.choices(spec(tmp_path), mc, [Everywhere], tmp_path)[0].placement
    assert (first.device, first.dtype, first.threads) == ("cuda:0", "bfloat16", 3)
    assert first.options.int8 is True and first.options.cache_dir == tmp_path
    assert first.options.prefix_caching is False
    assert first.options.max_prefill_tokens == 256
    assert first.options.prefill_graphs is False and first.options.decode_steps == 2


def test_every_backend_option_comes_from_the_model_config(tmp_path: Path) -> None:
    """Each typed option is the model's setting (kv_cache_memory once reached OpenVINO under
    another name and was silently ignored); unset ones keep ModelConfig's own defaults."""
    mc = ModelConfig(source="x", kv_cache_memory="3GiB", max_concurrent=5, streams=2,
                     cuda_graphs=True, prefill_wait_steps=4)
    options = placement.choices(spec(tmp_path), mc, [Everywhere], tmp_path)[0].placement.options
    assert options.kv_cache_memory == 3 * 2**30
    assert (options.max_concurrent, options.streams, options.cuda_graphs) == (5, 2, True)
    assert options.prefill_wait_steps == 4 and options.device_kind == "cuda"
    default = placement.choices(spec(tmp_path), ModelConfig(source="x"), [Everywhere],
                                tmp_path)[0].placement.options
    assert (default.max_concurrent, default.streams, default.prefix_caching) == (8, 1, True)
    assert default.kv_cache_memory is None


@pytest.fixture
def cgroup(tmp_path: Path, monkeypatch) -> Path:
    """A machine with an affinity mask of 4 CPUs and a cgroup v2 ``cpu.max`` file."""
    monkeypatch.setattr(system, "usable_cores", lambda: 4)
    monkeypatch.setattr(quota, "CGROUP_V2", tmp_path / "cpu.max")
    monkeypatch.setattr(quota, "CGROUP_V1", (tmp_path / "quota_us", tmp_path / "period_us"))
    return tmp_path / "cpu.max"


@pytest.mark.parametrize("cpu_max, threads", [("200000 100000", 2), ("max 100000", 4),
                                              (None, 4)])
def test_threads_default_to_the_cpu_quota(tmp_path: Path, cgroup, cpu_max, threads) -> None:
    if cpu_max is not None:
        cgroup.write_text(cpu_max)
    chain = placement.choices(spec(tmp_path), ModelConfig(source="x"), [Everywhere], tmp_path)
    assert {c.placement.threads for c in chain} == {threads}


def test_threads_asked_for_win_over_the_quota(tmp_path: Path, cgroup) -> None:
    cgroup.write_text("200000 100000")
    mc = ModelConfig(source="x", threads=3)
    assert placement.choices(spec(tmp_path), mc, [TorchOnly], tmp_path)[0].placement.threads == 3


def dtypes(chain) -> dict[str, str]:
    return {c.device_id: c.placement.dtype for c in chain}


def test_dtype_follows_the_checkpoint_where_the_device_runs_it(tmp_path: Path) -> None:
    # MACHINE: the GPU has bf16 and fp16, OpenVINO's CPU bf16, the torch CPU neither.
    chain = placement.choices(spec(tmp_path, "bfloat16"), ModelConfig(source="x"),
                              [Everywhere], tmp_path)
    assert dtypes(chain) == {"cuda:0": "bfloat16", "openvino:CPU": "bfloat16",
                             "cpu": "float32"}
    chain = placement.choices(spec(tmp_path, "float16"), ModelConfig(source="x"),
                              [Everywhere], tmp_path)
    assert dtypes(chain) == {"cuda:0": "float16", "openvino:CPU": "float32", "cpu": "float32"}


def test_float32_and_unknown_checkpoints_keep_each_device_default(tmp_path: Path) -> None:
    for checkpoint in ("float32", None):
        chain = placement.choices(spec(tmp_path, checkpoint), ModelConfig(source="x"),
                                  [Everywhere], tmp_path)
        assert dtypes(chain) == {"cuda:0": "bfloat16", "openvino:CPU": "float32",
                                 "cpu": "float32"}


def test_an_asked_dtype_wins_over_the_checkpoint(tmp_path: Path) -> None:
    chain = placement.choices(spec(tmp_path, "bfloat16"), ModelConfig(source="x",
                              dtype="float32"), [Everywhere], tmp_path)
    assert set(dtypes(chain).values()) == {"float32"}


def test_checkpoint_dtype_from_config_json_or_gguf() -> None:
    assert checkpoint_dtype({"dtype": "bfloat16"}, None) == "bfloat16"          # transformers 5
    assert checkpoint_dtype({"torch_dtype": "float16"}, None) == "float16"
    assert checkpoint_dtype({"dtype": None, "torch_dtype": "float32"}, None) == "float32"
    assert checkpoint_dtype({"model_type": "bert"}, None) is None
    assert checkpoint_dtype({"dtype": None}, "model.Q4_1.gguf") == "bfloat16"


def test_an_absent_requested_device_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="mps"):
        placement.choices(spec(tmp_path), ModelConfig(source="x", device="mps"),
                          [TorchOnly], tmp_path)


@pytest.mark.parametrize("text, size", [("1GiB", 2**30), ("512 MiB", 512 * 2**20),
                                        ("1.5GB", 1_500_000_000), (4096, 4096)])
def test_parse_size(text, size) -> None:
    assert parse_size(text) == size


def test_parse_size_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        parse_size("lots")
