import pytest

from hfserve.hardware import probes
from hfserve.hardware.device import OPENVINO_DEVICE, Device
from hfserve.hardware.selection import (
    Candidate,
    HardwareError,
    Plan,
    best_dtype,
    memory_estimate,
    normalize_dtype,
    plan,
)
from hfserve.types import Family

GIB = 1 << 30


def cuda(
    index: int,
    free_gib: float,
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16"),
) -> Device:
    return Device(
        kind="cuda",
        index=index,
        name=f"gpu{index}",
        memory_total=80 * GIB,
        memory_free=int(free_gib * GIB),
        dtypes=dtypes,
    )


def openvino(target: str) -> Device:
    return Device(
        kind="openvino",
        index=None,
        name=target,
        dtypes=("float32", "float16"),
        details={OPENVINO_DEVICE: target},
    )


CPU = Device(
    kind="cpu",
    index=None,
    name="xeon",
    memory_total=64 * GIB,
    memory_free=30 * GIB,
    dtypes=("float32", "bfloat16"),
)
QNN = Device(kind="qnn", index=None, name="npu", dtypes=("float32", "float16", "int8"))
MPS = Device(
    kind="mps",
    index=None,
    name="m3",
    memory_total=32 * GIB,
    memory_free=16 * GIB,
    dtypes=("float32", "float16"),
)


@pytest.fixture
def machine() -> list[Device]:
    return [CPU, QNN, openvino("CPU"), cuda(1, 40), cuda(0, 10)]


# memory_estimate and dtypes


def test_memory_estimate() -> None:
    assert memory_estimate(1_000_000_000, "bfloat16") == 2_400_000_000
    assert memory_estimate(1_000_000_000, "float32", headroom=0) == 4_000_000_000
    assert memory_estimate(1_000, "fp16", headroom=0.5, kv_bytes=7) == 3_007
    assert memory_estimate(1_000, "int4", headroom=0) == 500


def test_memory_estimate_rejects_bad_input() -> None:
    with pytest.raises(HardwareError, match="unknown dtype 'float7'"):
        memory_estimate(10, "float7")
    with pytest.raises(ValueError):
        memory_estimate(-1, "float32")


def test_normalize_dtype_aliases() -> None:
    assert normalize_dtype("bf16") == "bfloat16"
    assert normalize_dtype("torch.float16") == "float16"
    assert normalize_dtype(" FP32 ") == "float32"


def test_best_dtype_on_gpus() -> None:
    assert best_dtype(cuda(0, 1)) == "bfloat16"
    assert best_dtype(cuda(0, 1, ("float32", "float16"))) == "float16"
    assert best_dtype(cuda(0, 1, ("float32",))) == "float32"
    assert best_dtype(MPS) == "float16"


def test_best_dtype_on_cpu_defaults_to_float32() -> None:
    assert best_dtype(CPU) == "float32"
    assert best_dtype(CPU, "auto") == "float32"
    assert best_dtype(CPU, "bf16") == "bfloat16"

def test_best_dtype_on_openvino_is_float32_unless_asked() -> None:
    with_bf16 = Device(kind="openvino", index=None, name="CPU",
                       dtypes=("float32", "bfloat16", "float16"),
                       details={OPENVINO_DEVICE: "CPU"})
    assert best_dtype(openvino("NPU")) == "float32"
    assert best_dtype(with_bf16) == "float32"
    assert best_dtype(with_bf16, "bfloat16") == "bfloat16"


# dtype defaults: the checkpoint's own half type where the device computes it natively


@pytest.mark.parametrize("cpuinfo, arch, expected", [("x86_cpuinfo", "x86_64", "bfloat16"),
                                                     ("arm_cpuinfo", "aarch64", "bfloat16"),
                                                     ("old_x86_cpuinfo", "x86_64", "float32")])
def test_a_bf16_checkpoint_runs_in_bf16_on_cpus_with_native_bf16_only(
        host, fakes, cpuinfo, arch, expected) -> None:
    host.cpuinfo, host.arch = getattr(fakes, cpuinfo), arch
    (cpu,) = probes.find_cpu()
    assert best_dtype(cpu, checkpoint="bfloat16") == expected
    assert best_dtype(cpu, checkpoint="torch.bfloat16") == expected
    assert plan(Family.DECODER_ONLY, [cpu], checkpoint_dtype="bfloat16").primary.dtype \
        == expected


def test_float32_and_unknown_checkpoints_stay_float32_on_a_bf16_cpu(host) -> None:
    (cpu,) = probes.find_cpu()
    assert "bfloat16" in cpu.dtypes
    for checkpoint in ("float32", None, "auto", "float8_e4m3fn"):
        assert best_dtype(cpu, checkpoint=checkpoint) == "float32"


def test_a_float16_checkpoint_does_not_become_bf16_on_a_cpu() -> None:
    assert best_dtype(CPU, checkpoint="float16") == "float32"


def test_an_asked_dtype_wins_over_the_checkpoint() -> None:
    assert best_dtype(CPU, "float32", checkpoint="bfloat16") == "float32"
    assert best_dtype(cuda(0, 1), "float32", checkpoint="float16") == "float32"
    assert plan(Family.DECODER_ONLY, [CPU], dtype="fp32",
                checkpoint_dtype="bfloat16").primary.dtype == "float32"


def test_gpus_run_a_half_precision_checkpoint_in_its_own_dtype() -> None:
    assert best_dtype(cuda(0, 1), checkpoint="float16") == "float16"
    assert best_dtype(cuda(0, 1), checkpoint="bfloat16") == "bfloat16"
    t4 = cuda(0, 1, ("float32", "float16"))
    assert best_dtype(t4, checkpoint="bfloat16") == "float16"   # no bf16: the GPU default
    # A float32 (or unknown) checkpoint takes the GPU's half precision, as before.
    assert best_dtype(cuda(0, 1), checkpoint="float32") == "bfloat16"
    assert best_dtype(MPS, checkpoint="float32") == "float16"


def test_openvino_runs_the_checkpoint_dtype_its_target_has() -> None:
    with_bf16 = Device(kind="openvino", index=None, name="CPU",
                       dtypes=("float32", "bfloat16"), details={OPENVINO_DEVICE: "CPU"})
    assert best_dtype(with_bf16, checkpoint="bfloat16") == "bfloat16"
    assert best_dtype(openvino("NPU"), checkpoint="bfloat16") == "float32"
    assert best_dtype(openvino("GPU"), checkpoint="float16") == "float16"


def test_best_dtype_unsupported_preference_raises() -> None:
    with pytest.raises(
        HardwareError,
        match="cpu does not support float16; it supports float32, bfloat16",
    ):
        best_dtype(CPU, "float16")


# plan: explicit requests


def test_requested_id_wins(machine) -> None:
    result = plan(Family.DECODER_ONLY, machine, requested="cuda:0", needed_bytes=GIB)
    assert result.ids() == ["cuda:0"]
    assert result.primary == Candidate(machine[4], "bfloat16", "requested")


def test_requested_kind_keeps_every_device_of_that_kind(machine) -> None:
    result = plan("encoder-only", machine, requested="cuda", profile={"cuda:1": 5.0})
    assert result.ids() == ["cuda:1", "cuda:0"]
    assert {candidate.reason for candidate in result.candidates} == {"requested"}


def test_requested_openvino_target_case_insensitive() -> None:
    devices = [openvino("CPU"), openvino("GPU"), CPU]
    assert plan(Family.VISION, devices, requested="openvino:gpu").ids() == [
        "openvino:GPU"
    ]


def test_requested_cpu_is_honoured(machine) -> None:
    result = plan(Family.MOE, machine, requested="cpu")
    assert result.candidates == (Candidate(CPU, "float32", "requested"),)


def test_incompatible_request_raises(machine) -> None:
    with pytest.raises(
        HardwareError,
        match="'qnn' cannot run encoder-decoder models; use one of: cuda, rocm, mps, openvino, cpu",
    ):
        plan(Family.ENCODER_DECODER, machine, requested="qnn")
    assert issubclass(HardwareError, ValueError)


def test_absent_request_raises(machine) -> None:
    with pytest.raises(
        HardwareError,
        match="'cuda:5' is not present; detected: cpu, qnn, openvino:CPU, cuda:1, cuda:0",
    ):
        plan(Family.VISION, machine, requested="cuda:5")
    with pytest.raises(HardwareError, match="'mps' is not present"):
        plan(Family.VISION, machine, requested="mps")


def test_unknown_request_raises(machine) -> None:
    with pytest.raises(HardwareError, match="unknown device 'tpu:0'"):
        plan(Family.VISION, machine, requested="tpu:0")


def test_requested_device_too_small_raises(machine) -> None:
    with pytest.raises(
        HardwareError,
        match=r"'cuda:0' cannot run this decoder-only model "
        r"\(cuda:0: needs 20\.0 GiB, has 10\.0 GiB free\)",
    ):
        plan(Family.DECODER_ONLY, machine, requested="cuda:0", needed_bytes=20 * GIB)


def test_requested_dtype_the_device_lacks_raises(machine) -> None:
    with pytest.raises(HardwareError, match="qnn does not support bfloat16"):
        plan(Family.VISION, machine, requested="qnn", dtype="bfloat16")


# plan: automatic chains


def test_priority_order_with_cpu_last(machine) -> None:
    result = plan(Family.ENCODER_ONLY, machine)
    assert result.ids() == ["cuda:0", "cuda:1", "openvino:CPU", "qnn", "cpu"]
    assert [c.reason for c in result.candidates] == ["priority"] * 4 + ["fallback"]
    assert result.skipped == ()


def test_too_small_gpu_is_skipped_and_the_next_leads(machine) -> None:
    result = plan(Family.DECODER_ONLY, machine, needed_bytes=20 * GIB)
    assert result.ids() == ["cuda:1", "openvino:CPU", "qnn", "cpu"]
    assert result.skipped == (("cuda:0", "needs 20.0 GiB, has 10.0 GiB free"),)
    assert result.primary.device.id == "cuda:1"


def test_unknown_free_memory_counts_as_fitting(machine) -> None:
    result = plan(Family.VISION, machine, needed_bytes=50 * GIB)
    assert result.ids() == ["openvino:CPU", "qnn"]
    assert {device_id for device_id, _ in result.skipped} == {"cuda:0", "cuda:1", "cpu"}


def test_profile_orders_measured_devices_first(machine) -> None:
    profile = {"openvino:CPU": 770.0, "cuda:1": 300.25, "cpu": 10_000.0}
    result = plan(Family.ENCODER_ONLY, machine, profile=profile)
    assert result.ids() == ["openvino:CPU", "cuda:1", "cuda:0", "qnn", "cpu"]
    assert [c.reason for c in result.candidates] == [
        "fastest measured (770.0/s)",
        "measured (300.2/s)",
        "priority",
        "priority",
        "fallback",
    ]


def test_incompatible_kinds_are_skipped_with_reason(machine) -> None:
    result = plan(Family.MOE, machine)
    assert result.ids() == ["cuda:0", "cuda:1", "cpu"]
    assert dict(result.skipped) == {
        "qnn": "qnn does not run moe models",
        "openvino:CPU": "openvino does not run moe models",
    }


def test_partial_support_is_noted(machine) -> None:
    result = plan(Family.DECODER_ONLY, machine)
    assert [c.reason for c in result.candidates if c.device.kind == "qnn"] == [
        "priority (partial support)"
    ]


def test_parameters_estimate_need_per_dtype(machine) -> None:
    result = plan(Family.DECODER_ONLY, [cuda(0, 40), CPU], parameters=10_000_000_000)
    assert result.candidates == (Candidate(cuda(0, 40), "bfloat16", "priority"),)
    assert result.skipped == (("cpu", "needs 44.7 GiB, has 30.0 GiB free"),)


def test_dtype_preference_skips_devices_without_it(machine) -> None:
    devices = [cuda(0, 40, ("float32", "float16")), cuda(1, 40), CPU]
    result = plan(Family.DECODER_ONLY, devices, dtype="bf16")
    assert result.ids() == ["cuda:1", "cpu"]
    assert all(candidate.dtype == "bfloat16" for candidate in result.candidates)
    assert result.skipped[0][0] == "cuda:0"


def test_openvino_targets_prefer_gpu_then_npu_then_cpu() -> None:
    devices = [openvino("CPU"), openvino("NPU"), openvino("GPU"), CPU]
    assert plan(Family.VISION, devices).ids() == [
        "openvino:GPU",
        "openvino:NPU",
        "openvino:CPU",
        "cpu",
    ]


def test_nothing_fits_raises(machine) -> None:
    with pytest.raises(HardwareError, match="no device can run this state-space model"):
        plan(Family.STATE_SPACE, [cuda(0, 1), CPU], needed_bytes=100 * GIB)


def test_needed_bytes_and_parameters_together_are_refused(machine) -> None:
    with pytest.raises(ValueError, match="not both"):
        plan(Family.VISION, machine, needed_bytes=1, parameters=1)


def test_plan_is_immutable(machine) -> None:
    result = plan(Family.VISION, machine)
    assert isinstance(result, Plan)
    with pytest.raises(AttributeError):
        result.candidates = ()  # type: ignore[misc]
