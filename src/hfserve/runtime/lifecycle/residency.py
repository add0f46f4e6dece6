"""Which models leave a device so that another fits: least recently used first, never a
pinned model and never one with requests in flight. Pure: the manager gives it the
figures and carries out the plan."""

from __future__ import annotations

from dataclasses import dataclass

from hfserve.errors import MemoryExhausted


@dataclass(frozen=True)
class Resident:
    """A loaded model on the device being planned for."""

    name: str
    bytes: int
    last_used: float
    pinned: bool = False
    busy: bool = False


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def plan_evictions(name: str, needed: int, free: int, residents: list[Resident],
                   device: str = "the device") -> list[str]:
    """The models to unload, in order, so that ``needed`` bytes fit in ``free`` (the room
    left now); [] when it fits already. Raises ``MemoryExhausted`` naming what holds the
    memory when even unloading every idle, unpinned model would not make room."""
    if needed <= free:
        return []
    victims: list[str] = []
    room = free
    for resident in sorted(residents, key=lambda r: r.last_used):
        if resident.pinned or resident.busy or resident.name == name:
            continue
        victims.append(resident.name)
        room += resident.bytes
        if needed <= room:
            return victims
    held = [f"{r.name} ({'pinned' if r.pinned else 'busy'})" for r in residents
            if (r.pinned or r.busy) and r.name != name]
    raise MemoryExhausted(
        f"insufficient memory to load {name} on {device}: needs {gib(needed)}, "
        f"{gib(max(free, 0))} free, {gib(max(room, 0))} after unloading every idle model; "
        f"pinned/busy: [{', '.join(held)}]")
