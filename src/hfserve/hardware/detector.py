"""Detection: run the probes once, keep what they found, re-read memory on demand."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from hfserve.hardware import memory, probes
from hfserve.hardware.absence import absences
from hfserve.hardware.device import KINDS, Device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """One detection pass: the devices found, and why each empty kind found none."""

    devices: tuple[Device, ...]
    errors: Mapping[str, str] = field(default_factory=dict)
    causes: Mapping[str, str] = field(default_factory=dict)


def _priority(device: Device) -> int:
    return KINDS.index(device.kind)


class Detector:
    """Runs a table of probes in priority order and caches the result until refreshed.

    A CPU device is always present: when the CPU probe fails, a minimal one stands in.
    """

    def __init__(self, table: Mapping[str, probes.Probe]) -> None:
        self._table = table
        self._lock = threading.Lock()
        self._detection: Detection | None = None

    def detection(self, refresh: bool = False) -> Detection:
        with self._lock:
            if self._detection is None or refresh:
                self._detection = self._run()
            return self._detection

    def detect(self, refresh: bool = False) -> list[Device]:
        return list(self.detection(refresh).devices)

    def errors(self) -> dict[str, str]:
        return dict(self.detection().errors)

    def absences(self) -> list[dict[str, object]]:
        detection = self.detection()
        return absences(detection.errors, detection.causes)

    def clear(self) -> None:
        with self._lock:
            self._detection = None

    def _run(self) -> Detection:
        found: list[Device] = []
        errors: dict[str, str] = {}
        causes: dict[str, str] = {}
        for kind, probe in self._table.items():
            result = probe.run()
            found.extend(result.devices)
            if result.reason is not None:
                errors[kind] = result.reason
                if result.cause is not None:
                    causes[kind] = result.cause
                log.debug("no %s device: %s", kind, result.reason)
        if not any(device.kind == "cpu" for device in found):
            found.append(probes.minimal_cpu())
        found.sort(key=_priority)
        log.info("detected devices: %s", ", ".join(device.id for device in found))
        return Detection(tuple(found), errors, causes)


DEFAULT = Detector(probes.PROBES)


def detect(refresh: bool = False) -> list[Device]:
    """Every device on this machine, in priority order; cached until ``refresh``."""
    return DEFAULT.detect(refresh)


def probe_errors() -> dict[str, str]:
    """Why each kind that found no device found none (kind -> reason)."""
    return DEFAULT.errors()


def absent_kinds() -> list[dict[str, object]]:
    """Each kind that found no device: its cause, the probe's reason and a hint."""
    return DEFAULT.absences()


def refresh_memory(device: Device) -> Device:
    """The device with its total and free memory read again; unchanged if that fails."""
    try:
        return memory.read_memory(device)
    except Exception:  # a failing reader leaves the last known figures in place
        log.warning("could not re-read memory of %s", device.id, exc_info=True)
        return device
