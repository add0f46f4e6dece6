"""CPU accounting from /proc: how busy the server, this process (the client or the raw
baseline) and everything else on the machine were during a measurement. On a 2-core machine
other work changes results a lot, so every phase records it."""

from __future__ import annotations

import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_seconds(pid: int) -> float:
    """CPU seconds of a process and of its live descendants (hfserve runs each generation
    model in a process of its own)."""
    import psutil

    total = process_seconds(pid)
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return total
    seconds = (process_seconds(child.pid) for child in children)
    return total + sum(s for s in seconds if s == s)    # nan: the child has just ended


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (steal included)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in parts[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


class CpuMeter:
    """Mark a start, then read percentages of one core used since then."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.start()

    def _sample(self) -> tuple[float, float, float, float]:
        server = tree_seconds(self.server_pid) if self.server_pid else 0.0
        return time.perf_counter(), machine_busy_seconds(), process_seconds(), server

    def start(self) -> None:
        self._t0 = self._sample()

    def read(self) -> dict[str, float]:
        t1 = self._sample()
        wall = max(t1[0] - self._t0[0], 1e-9)
        busy, mine, server = (b - a for a, b in zip(self._t0[1:], t1[1:], strict=True))
        out = {"client_cpu_pct": 100 * mine / wall,
               "other_cpu_pct": max(0.0, 100 * (busy - mine - server) / wall)}
        if self.server_pid:
            out["server_cpu_pct"] = 100 * server / wall
        return out


def wait_quiet(max_wait: float, threshold_pct: float = 25.0, sample: float = 1.0) -> float:
    """Wait (at most ``max_wait`` s) until the machine is nearly idle for one ``sample``;
    return the last measured machine-wide busy percentage (of one core)."""
    deadline = time.monotonic() + max_wait
    while True:
        b0 = machine_busy_seconds()
        time.sleep(sample)
        busy = 100 * (machine_busy_seconds() - b0) / sample
        if busy < threshold_pct or time.monotonic() >= deadline:
            return busy
