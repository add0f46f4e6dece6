"""The response cache: results of deterministic encoder work kept by key, bounded by bytes
(least recently used dropped first) and by age. Values are frozen when stored (numpy arrays
as read-only copies, other objects deep-copied) and Python objects are copied again when
read, so no caller can change what a later one gets."""

from __future__ import annotations

import copy
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np

from hfserve import metrics

MISSING: Any = object()
ENTRY_OVERHEAD = 200      # the key string, the entry record and the dict slot, roughly


def size_of(value: Any) -> int:
    """Bytes ``value`` holds, counting what containers, dataclasses and arrays refer to."""
    if isinstance(value, np.ndarray):
        return sys.getsizeof(value) + (0 if value.base is None and value.flags.owndata
                                       else value.nbytes)
    if isinstance(value, str | bytes | int | float | bool | type(None)):
        return sys.getsizeof(value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(size_of(k) + size_of(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return sys.getsizeof(value) + sum(size_of(v) for v in value)
    if is_dataclass(value):
        return sys.getsizeof(value) + sum(size_of(getattr(value, f.name))
                                          for f in fields(value))
    return sys.getsizeof(value)


def frozen(value: Any) -> Any:
    """A copy no caller shares: arrays read-only (also inside a tuple), anything else
    deep-copied."""
    if isinstance(value, np.ndarray):
        out = np.array(value, copy=True)
        out.flags.writeable = False
        return out
    if isinstance(value, tuple):
        return tuple(frozen(v) for v in value)
    return copy.deepcopy(value)


def thawed(value: Any) -> Any:
    """What a reader gets: a read-only array as it is, a copy of anything else."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, tuple):
        return tuple(thawed(v) for v in value)
    return copy.deepcopy(value)


@dataclass
class _Entry:
    value: Any
    size: int
    expires: float
    model: str


class ResponseCache:
    """``get``/``put`` by key; ``max_bytes`` 0 holds nothing."""

    def __init__(self, max_bytes: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes, self.ttl_s, self.clock = max_bytes, ttl_s, clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.bytes = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, model: str) -> Any:
        """The value stored under ``key`` (a copy), or ``MISSING``; counted per model."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= self.clock():
            self._remove(key)
            metrics.CACHE_EVICTIONS.inc()
            entry = None
        metrics.CACHE_REQUESTS.labels(model, "miss" if entry is None else "hit").inc()
        if entry is None:
            return MISSING
        self._entries.move_to_end(key)
        return thawed(entry.value)

    def put(self, key: str, value: Any, model: str) -> None:
        """Store a frozen copy of ``value``; one bigger than the whole cache is not kept."""
        value = frozen(value)
        size = size_of(value) + len(key) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._remove(key)
        self._evict(self.max_bytes - size)
        self._entries[key] = _Entry(value, size, self.clock() + self.ttl_s, model)
        self.bytes += size
        metrics.CACHE_BYTES.set(self.bytes)

    def drop_model(self, model: str) -> int:
        """Forget every result of ``model``; how many there were."""
        keys = [k for k, e in self._entries.items() if e.model == model]
        for key in keys:
            self._remove(key)
        return len(keys)

    def _evict(self, room: int) -> None:
        """Drop the least recently used until ``room`` bytes hold everything left, and
        expired ones while they are the least recently used (a scan of every entry per
        store would cost more than it saves; an expired one elsewhere is dropped when read
        or when its turn comes)."""
        now = self.clock()
        while self._entries and (self.bytes > room
                                 or next(iter(self._entries.values())).expires <= now):
            self._remove(next(iter(self._entries)))
            metrics.CACHE_EVICTIONS.inc()

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size
        metrics.CACHE_BYTES.set(self.bytes)
