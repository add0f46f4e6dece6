"""Batch selection policy for encoder work, as pure functions (unit-tested with a fake clock).

A batch is bounded by item count and by a token budget counted as padded tokens
(longest item x items). Within a window of the oldest queued items, sorting by length keeps
items of similar size together to cut padding; the oldest item is always included so no
request starves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)          # identity: an item is itself, and hashable
class Pending:
    cost: int
    arrival: float
    payload: Any = None
    priority: int = 1
    deadline: float | None = None
    future: Any = field(default=None, repr=False)


def padded_cost(items: Sequence[Pending]) -> int:
    return max((p.cost for p in items), default=0) * len(items)


def full(queue: Sequence[Pending], *, max_batch_size: int, max_batch_tokens: int) -> bool:
    """A whole batch is waiting: waiting longer cannot make it bigger."""
    return len(queue) >= max_batch_size or padded_cost(queue) >= max_batch_tokens


def ready(queue: Sequence[Pending], now: float, *, max_batch_size: int, max_wait: float,
          max_batch_tokens: int) -> bool:
    """Dispatch now? Yes when a full batch is waiting or the oldest item waited long enough."""
    if not queue:
        return False
    if full(queue, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens):
        return True
    return now - min(p.arrival for p in queue) >= max_wait


def select_batch(queue: Sequence[Pending], *, max_batch_size: int, max_batch_tokens: int,
                 window: int | None = None) -> list[Pending]:
    """Pick the next batch from ``queue`` (ordered by priority, then arrival)."""
    if not queue:
        return []
    window_items = list(queue[: window or max_batch_size * 4])
    anchor = window_items[0]
    by_len = sorted(window_items, key=lambda p: p.cost)
    pos = next(i for i, p in enumerate(by_len) if p is anchor)
    lo = hi = pos
    chosen = [anchor]
    while len(chosen) < max_batch_size:
        below = by_len[lo - 1] if lo > 0 else None
        above = by_len[hi + 1] if hi + 1 < len(by_len) else None
        if below is None and above is None:
            break
        # Take the neighbour whose length is closest to the anchor's.
        take_above = below is None or (above is not None and
                                       above.cost - anchor.cost <= anchor.cost - below.cost)
        candidate = above if take_above else below
        if padded_cost([*chosen, candidate]) > max_batch_tokens:
            break
        chosen.append(candidate)
        if take_above:
            hi += 1
        else:
            lo -= 1
    order = {p: i for i, p in enumerate(queue)}
    return sorted(chosen, key=order.__getitem__)
