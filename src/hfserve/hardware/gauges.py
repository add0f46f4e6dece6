"""Device memory and utilisation read at each scrape of ``/metrics``, as a
prometheus-client collector: every detected device's memory (NVML for NVIDIA GPUs where
``nvidia-ml-py`` is installed, which needs no CUDA context; the hardware layer's readers
otherwise), and each NVIDIA GPU's utilisation. Process RSS and CPU time come from
prometheus-client's own process collector (``process_resident_memory_bytes``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hfserve.hardware import system
from hfserve.hardware.detector import detect, refresh_memory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    memory_total: int
    memory_used: int
    utilization: float     # 0..1, the share of the last sample period a kernel ran


def nvidia_readings() -> list[GpuReading]:
    """Every NVIDIA GPU as NVML numbers it (physical order); [] without NVML or a GPU."""
    try:
        nvml = system.load_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # no package, no driver: there is nothing to read
        return []
    readings = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        rates = nvml.nvmlDeviceGetUtilizationRates(handle)
        name = nvml.nvmlDeviceGetName(handle)
        readings.append(GpuReading(index, name.decode() if isinstance(name, bytes) else name,
                                   int(memory.total), int(memory.used), rates.gpu / 100.0))
    return readings


class DeviceCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        memory = GaugeMetricFamily("hfserve_device_memory_bytes",
                                   "Device memory: total and used", labels=["device", "kind"])
        utilization = GaugeMetricFamily("hfserve_device_utilization_ratio",
                                        "Share of time the device was busy (NVIDIA: NVML)",
                                        labels=["device", "name"])
        gpus = nvidia_readings()
        for gpu in gpus:
            memory.add_metric([f"nvml:{gpu.index}", "total"], gpu.memory_total)
            memory.add_metric([f"nvml:{gpu.index}", "used"], gpu.memory_used)
            utilization.add_metric([f"nvml:{gpu.index}", gpu.name], gpu.utilization)
        for device in detect():
            if gpus and device.kind == "cuda":
                continue       # NVML said it, without touching torch
            try:
                device = refresh_memory(device)
            except Exception:  # a scrape never fails for one device
                log.debug("no memory reading for %s", device.id, exc_info=True)
            if device.memory_total is not None:
                memory.add_metric([device.id, "total"], device.memory_total)
                if device.memory_free is not None:
                    memory.add_metric([device.id, "used"],
                                      device.memory_total - device.memory_free)
        yield memory
        yield utilization


_registered = False


def register() -> None:
    """Add the collector to prometheus-client's default registry, once per process."""
    global _registered
    if not _registered:
        from prometheus_client import REGISTRY

        REGISTRY.register(DeviceCollector())
        _registered = True
