"""How much memory a device has, read again whenever asked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from hfserve.hardware import system
from hfserve.hardware.device import OPENVINO_DEVICE, Device

Memory = tuple[int | None, int | None]
"""(total, free) in bytes; None where unknown."""


def system_memory() -> Memory:
    """Physical memory of the host: (total, available)."""
    stats = system.load_module("psutil").virtual_memory()
    return int(stats.total), int(stats.available)


def _torch_memory(device: Device) -> Memory:
    free, total = system.load_module("torch").cuda.mem_get_info(device.index)
    return int(total), int(free)


def _openvino_memory(device: Device) -> Memory:
    if str(device.details.get(OPENVINO_DEVICE, "")).split(".")[0] == "CPU":
        return system_memory()
    return device.memory_total, device.memory_free


def _unchanged(device: Device) -> Memory:
    return device.memory_total, device.memory_free


MEMORY_READERS: dict[str, Callable[[Device], Memory]] = {
    "cuda": _torch_memory,
    "rocm": _torch_memory,
    "mps": lambda device: system_memory(),
    "openvino": _openvino_memory,
    "qnn": _unchanged,
    "cpu": lambda device: system_memory(),
}


def read_memory(device: Device) -> Device:
    """The device with its memory figures read again."""
    total, free = MEMORY_READERS[device.kind](device)
    return replace(device, memory_total=total, memory_free=free)
