"""The room a device has for one more model: its ``memory_limits`` entry (by device id,
else by kind) less what the models on it are counted for, or, without an entry, what the
device reports free now less a reserve. Turns that into the models to evict."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hfserve.hardware import detect, refresh_memory
from hfserve.runtime.lifecycle.placement import Choice
from hfserve.runtime.lifecycle.residency import Resident, plan_evictions
from hfserve.types import ModelState

if TYPE_CHECKING:
    from hfserve.runtime.lifecycle.entry import ModelEntry


def _kind(entry: ModelEntry) -> str | None:
    skill = entry.skill
    return skill.placement.options.device_kind if skill is not None else None


class MemoryBudget:
    def __init__(self, limits: dict[str, int], reserve: int) -> None:
        self.limits, self.reserve = limits, reserve

    def _on_device(self, choice: Choice, by_kind: bool,
                   others: list[ModelEntry]) -> list[ModelEntry]:
        kind = choice.placement.options.device_kind
        return [e for e in others if e.resident_bytes > 0 and (
            e.device_id == choice.device_id or (by_kind and _kind(e) == kind))]

    def free(self, choice: Choice, others: list[ModelEntry]) -> tuple[int | None, bool]:
        """Bytes free for a new model on the choice's device (None: unknown, no check) and
        whether the figure is a configured limit (shared by every device of the kind)."""
        kind = choice.placement.options.device_kind
        limit = self.limits.get(choice.device_id)
        by_kind = limit is None and kind in self.limits
        if by_kind:
            limit = self.limits[kind]
        if limit is not None:
            used = sum(e.resident_bytes for e in self._on_device(choice, by_kind, others))
            return limit - used, by_kind
        device = next((d for d in detect() if d.id == choice.device_id), None)
        if device is None:
            return None, False
        reported = refresh_memory(device).memory_free
        return (None if reported is None else reported - self.reserve), False

    def evictions(self, entry: ModelEntry, choice: Choice, others: list[ModelEntry],
                  busy_too: bool = False,
                  drainable: Callable[[ModelEntry], bool] | None = None) -> list[ModelEntry]:
        """The models to unload, least recently used first, so that ``entry`` fits; raises
        ``MemoryExhausted`` when unloading every idle, unpinned one would not do. With
        ``busy_too``, models with requests in flight count as idle (would it fit once
        they are?); with ``drainable``, the busy models it accepts do (they may be
        drained: what is in flight finishes before the unload)."""
        free, by_kind = self.free(choice, others)
        if free is None:
            return []
        on_device = self._on_device(choice, by_kind, others)
        residents = [Resident(e.name, e.resident_bytes, e.last_used, e.pinned,
                              busy=(e.busy > 0 and not busy_too
                                    and not (drainable is not None and drainable(e)))
                              or e.state != ModelState.READY)
                     for e in on_device]
        names = plan_evictions(entry.name, entry.estimated_bytes or 0, free, residents,
                               device=choice.device_id)
        by_name = {e.name: e for e in on_device}
        return [by_name[n] for n in names]
