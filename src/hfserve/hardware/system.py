"""The host as the probes see it: optional libraries, /proc/cpuinfo, the environment.

Every probe reaches the outside world through these functions, so a test can swap one
function to stand in for a library or a machine.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

CPUINFO = Path("/proc/cpuinfo")


def load_module(name: str) -> ModuleType:
    """Import an optional library; raises ImportError when it is not installed."""
    return importlib.import_module(name)


def read_cpuinfo() -> str:
    """The text of /proc/cpuinfo, or "" where the system has none."""
    try:
        return CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def machine() -> str:
    """The CPU architecture name, lower case ("x86_64", "aarch64", "arm64")."""
    return platform.machine().lower()


def processor() -> str:
    """The processor description the platform reports; may be empty."""
    return platform.processor()


def env(name: str) -> str | None:
    """One environment variable, or None when unset."""
    return os.environ.get(name)


def logical_cores() -> int:
    """Logical CPUs in the machine."""
    return os.cpu_count() or 1


def usable_cores() -> int:
    """Logical CPUs this process may run on (its affinity mask, where there is one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return logical_cores()


def path_exists(path: str) -> bool:
    """Whether a device node or driver file exists (``/dev/kfd``, ``/proc/driver/...``)."""
    return os.path.exists(path)


def platform_name() -> str:
    """``sys.platform``: "linux", "darwin", "win32"."""
    return sys.platform
