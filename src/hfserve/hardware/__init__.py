"""Hardware: detect devices, know what runs where, and choose a device for a model.

Importing this package loads no accelerator library; probes import theirs when run.
"""

from hfserve.hardware.absence import format_absences
from hfserve.hardware.compatibility import Support, compatible_kinds, support, table
from hfserve.hardware.detector import (
    Detector,
    absent_kinds,
    detect,
    probe_errors,
    refresh_memory,
)
from hfserve.hardware.device import BACKENDS, KINDS, Device
from hfserve.hardware.probes import PROBES, Probe, ProbeResult, Unavailable
from hfserve.hardware.quota import cpu_quota
from hfserve.hardware.report import format_table, to_json
from hfserve.hardware.selection import (
    Candidate,
    HardwareError,
    Plan,
    best_dtype,
    memory_estimate,
    normalize_dtype,
    plan,
)

__all__ = [
    "BACKENDS",
    "KINDS",
    "PROBES",
    "Candidate",
    "Detector",
    "Device",
    "HardwareError",
    "Plan",
    "Probe",
    "ProbeResult",
    "Support",
    "Unavailable",
    "absent_kinds",
    "best_dtype",
    "compatible_kinds",
    "cpu_quota",
    "detect",
    "format_absences",
    "format_table",
    "memory_estimate",
    "normalize_dtype",
    "plan",
    "probe_errors",
    "refresh_memory",
    "support",
    "table",
    "to_json",
]
