import pytest

from hfserve.hardware import detector, memory, probes
from hfserve.hardware.detector import Detector
from hfserve.hardware.device import Device

GIB = 1 << 30


class CountingFind:
    def __init__(self, devices: list[Device]) -> None:
        self.devices = devices
        self.calls = 0

    def __call__(self) -> list[Device]:
        self.calls += 1
        return list(self.devices)


def cpu(name: str = "fake cpu") -> Device:
    return Device(
        kind="cpu", index=None, name=name, memory_total=8 * GIB, memory_free=4 * GIB
    )


def gpu(index: int) -> Device:
    return Device(
        kind="cuda", index=index, name=f"gpu{index}", memory_total=GIB, memory_free=GIB
    )


def missing() -> list[Device]:
    raise probes.Unavailable("not here")


def test_devices_come_back_in_priority_order() -> None:
    table = {
        "cpu": probes.Probe("cpu", CountingFind([cpu()])),
        "qnn": probes.Probe("qnn", missing),
        "cuda": probes.Probe("cuda", CountingFind([gpu(0), gpu(1)])),
    }
    found = Detector(table).detect()
    assert [device.id for device in found] == ["cuda:0", "cuda:1", "cpu"]


def test_detection_is_cached_until_refresh() -> None:
    find = CountingFind([cpu()])
    detector_ = Detector({"cpu": probes.Probe("cpu", find)})
    first = detector_.detect()
    assert detector_.detect() == first
    assert find.calls == 1
    find.devices = [cpu("replaced")]
    assert detector_.detect(refresh=True)[0].name == "replaced"
    assert find.calls == 2
    detector_.clear()
    detector_.detect()
    assert find.calls == 3


def test_errors_name_each_kind_that_found_nothing() -> None:
    table = {
        "cuda": probes.Probe("cuda", missing),
        "mps": probes.Probe("mps", list),
        "cpu": probes.Probe("cpu", CountingFind([cpu()])),
    }
    assert Detector(table).errors() == {"cuda": "not here", "mps": "no devices found"}


def test_failed_cpu_probe_leaves_a_minimal_cpu() -> None:
    def broken() -> list[Device]:
        raise OSError("no /proc")

    detection = Detector({"cpu": probes.Probe("cpu", broken)}).detection()
    assert [device.id for device in detection.devices] == ["cpu"]
    assert detection.devices[0].details["minimal"] is True
    assert detection.errors["cpu"] == "probe failed: OSError: no /proc"


def test_real_probe_table_with_fake_host(host, fakes, two_gpus, monkeypatch) -> None:
    host.modules["torch"] = fakes.torch(two_gpus)
    host.modules["onnxruntime"] = fakes.onnxruntime(["QNNExecutionProvider"])
    host.modules["openvino"] = fakes.openvino(
        {
            "CPU": {"OPTIMIZATION_CAPABILITIES": ["FP32"]},
            "NPU": {"OPTIMIZATION_CAPABILITIES": ["FP16"]},
        }
    )
    monkeypatch.setattr(detector, "DEFAULT", Detector(probes.PROBES))
    found = detector.detect()
    assert [device.id for device in found] == [
        "cuda:0",
        "cuda:1",
        "openvino:CPU",
        "openvino:NPU",
        "qnn",
        "cpu",
    ]
    assert detector.probe_errors() == {
        "rocm": "torch is not a ROCm build",
        "mps": "torch.backends.mps.is_available() is False",
    }


def test_refresh_memory_reads_again(host, fakes) -> None:
    host.modules["psutil"] = fakes.psutil(total=16 * GIB, available=2 * GIB)
    refreshed = detector.refresh_memory(cpu())
    assert (refreshed.memory_total, refreshed.memory_free) == (16 * GIB, 2 * GIB)


def test_refresh_memory_keeps_device_when_reader_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(device: Device) -> tuple[int, int]:
        raise RuntimeError("CUDA error: device lost")

    monkeypatch.setitem(memory.MEMORY_READERS, "cuda", broken)
    device = gpu(0)
    assert detector.refresh_memory(device) is device


def test_detect_on_this_machine_finds_the_cpu() -> None:
    found = detector.detect(refresh=True)
    cpus = [device for device in found if device.kind == "cpu"]
    assert len(cpus) == 1
    assert found[-1] == cpus[0]
    assert cpus[0].memory_total is not None and cpus[0].memory_total > 0
    assert "float32" in cpus[0].dtypes
    assert "cpu" not in detector.probe_errors()
    refreshed = detector.refresh_memory(cpus[0])
    assert (
        refreshed.memory_free is not None
        and 0 < refreshed.memory_free <= refreshed.memory_total
    )


def test_absences_give_cause_reason_and_hint() -> None:
    from hfserve.hardware.absence import format_absences

    def hidden() -> list[Device]:
        raise probes.Unavailable("CUDA_VISIBLE_DEVICES='' hides every device", "hidden")

    table = {"cuda": probes.Probe("cuda", hidden), "qnn": probes.Probe("qnn", list)}
    rows = Detector(table).absences()
    assert rows[0] == {"kind": "cuda", "cause": "hidden",
                       "reason": "CUDA_VISIBLE_DEVICES='' hides every device",
                       "hint": "unset CUDA_VISIBLE_DEVICES or list the GPUs to use"}
    assert (rows[1]["kind"], rows[1]["cause"], rows[1]["hint"]) == ("qnn", "no device", None)
    text = format_absences(rows)
    assert text.splitlines()[0] == "not available:"
    assert "cuda  hidden: CUDA_VISIBLE_DEVICES" in text and "-> unset" in text
