"""Device gauges at scrape time: NVML's memory and utilisation for NVIDIA GPUs (a fake
NVML here), the hardware layer's memory readers for the rest."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hfserve.hardware import gauges, system
from hfserve.hardware.device import Device

GIB = 1 << 30


def fake_nvml() -> SimpleNamespace:
    return SimpleNamespace(
        nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=80 * GIB, used=(h + 1) * GIB),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=25 * (h + 1)),
        nvmlDeviceGetName=lambda h: b"NVIDIA H100")


def _scrape(monkeypatch, devices: list[Device]) -> dict[tuple, float]:
    """Each sample as (name, device, kind or gpu name) -> value."""
    monkeypatch.setattr(gauges, "detect", lambda: devices)
    monkeypatch.setattr(gauges, "refresh_memory", lambda d: d)
    registry = CollectorRegistry()
    registry.register(gauges.DeviceCollector())
    text = generate_latest(registry).decode()
    return {(s.name, s.labels["device"], s.labels.get("kind") or s.labels.get("name")): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_nvml_gives_gpu_memory_and_utilisation(monkeypatch) -> None:
    monkeypatch.setattr(system, "load_module", lambda name: fake_nvml())
    cuda = Device(kind="cuda", index=0, name="H100", memory_total=1, memory_free=1)
    cpu = Device(kind="cpu", index=None, name="x", memory_total=8 * GIB, memory_free=2 * GIB)
    found = _scrape(monkeypatch, [cuda, cpu])
    assert found[("hfserve_device_utilization_ratio", "nvml:1", "NVIDIA H100")] == 0.5
    assert found[("hfserve_device_memory_bytes", "nvml:0", "used")] == GIB
    assert found[("hfserve_device_memory_bytes", "nvml:1", "total")] == 80 * GIB
    assert not any(key[1] == "cuda:0" for key in found)   # NVML's figures stand for it
    assert found[("hfserve_device_memory_bytes", "cpu", "used")] == 6 * GIB


def test_without_nvml_the_hardware_readers_give_memory(monkeypatch) -> None:
    def no_module(name: str):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(system, "load_module", no_module)
    cuda = Device(kind="cuda", index=0, name="H100", memory_total=80 * GIB, memory_free=GIB)
    found = _scrape(monkeypatch, [cuda])
    assert found == {("hfserve_device_memory_bytes", "cuda:0", "total"): 80 * GIB,
                     ("hfserve_device_memory_bytes", "cuda:0", "used"): 79 * GIB}
