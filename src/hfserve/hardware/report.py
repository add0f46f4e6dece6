"""Human- and machine-readable views of the detected devices."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

from hfserve.hardware.device import Device

GIB = 1 << 30
UNKNOWN = "-"


def _gib(size: int | None) -> str:
    return UNKNOWN if size is None else f"{size / GIB:.1f}"


COLUMNS: Sequence[tuple[str, Callable[[Device], str]]] = (
    ("ID", lambda device: device.id),
    ("NAME", lambda device: device.name),
    ("TOTAL GiB", lambda device: _gib(device.memory_total)),
    ("FREE GiB", lambda device: _gib(device.memory_free)),
    ("DTYPES", lambda device: ",".join(device.dtypes) or UNKNOWN),
    ("BACKEND", lambda device: device.backend),
)


def format_table(devices: Iterable[Device]) -> str:
    """A plain-text table, one row per device, columns padded to line up."""
    rows = [[header for header, _ in COLUMNS]]
    rows += [[cell(device) for _, cell in COLUMNS] for device in devices]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = [
        "  ".join(
            text.ljust(width) for text, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def to_json(devices: Iterable[Device]) -> str:
    """The devices as a JSON array of ``Device.to_dict()`` objects."""
    return json.dumps([device.to_dict() for device in devices], indent=2)
