"""How many CPUs this process may really use: the smaller of its affinity mask and its
cgroup's CPU quota, rounded down, at least one.

A container limited to two CPUs by a cgroup quota still sees every host core in
``os.cpu_count()`` and usually in its affinity mask too; threads sized to the host would
then outnumber the quota, and the kernel throttles the whole process each period.
"""

from __future__ import annotations

from pathlib import Path

from hfserve.hardware import system

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
             Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    """CPUs that ``quota`` microseconds per ``period`` allow; None for no limit ("max", -1)."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:      # "max" (v2) or something unreadable: no limit
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cgroup_cpus(v2: Path | None = None, v1: tuple[Path, Path] | None = None) -> float | None:
    """CPUs the cgroup quota allows (e.g. 1.5), or None where there is no quota or no file.
    cgroup v2 has "quota period" (quota "max": no limit) in ``cpu.max``; v1 has the two
    numbers in files of their own (quota -1: no limit). The paths default to the module's
    ``CGROUP_V2`` and ``CGROUP_V1``, read at each call."""
    text = _read(v2 or CGROUP_V2)
    if text is not None:
        parts = text.split()
        return _ratio(parts[0], parts[1]) if len(parts) == 2 else None
    quota, period = (_read(path) for path in v1 or CGROUP_V1)
    return None if quota is None or period is None else _ratio(quota, period)


def cpu_quota(affinity: int | None = None, v2: Path | None = None,
              v1: tuple[Path, Path] | None = None) -> int:
    """CPUs this process may use: its affinity mask (``affinity``; default: the mask of this
    process) capped by the cgroup quota, rounded down, at least 1."""
    cpus = system.usable_cores() if affinity is None else affinity
    allowed = cgroup_cpus(v2, v1)
    if allowed is not None:
        cpus = min(cpus, int(allowed))
    return max(1, cpus)
