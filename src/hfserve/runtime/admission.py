"""Admission to a model's queue, one policy for the encoder batcher, the generation worker
and a model process's proxy: the queue is bounded, a newcomer may shed the newest waiting
work of a lower priority (a larger number), and work whose deadline passed is dropped. Each
refusal is counted (``hfserve_requests_rejected_total`` by reason) and is the error the
client gets: 429 with Retry-After when refused or shed, 504 when out of time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from hfserve import metrics
from hfserve.errors import DeadlineExceeded, Overloaded

T = TypeVar("T")

QUEUE_FULL_RETRY_S = 1.0   # a full queue drains within about a batch
SHED_RETRY_S = 2.0         # shed work waits for the higher-priority burst to pass


def past(deadline: float | None, now: float) -> bool:
    return deadline is not None and now > deadline


def victim(waiting: Iterable[T], priority: int, rank: Callable[[T], tuple[int, Any]]) -> T | None:
    """The entry to shed so that work of ``priority`` gets in: the newest of the lowest
    priority below it (``rank(entry)`` = (priority, arrival order)); None when everything
    waiting ranks at least as high."""
    lower = [entry for entry in waiting if rank(entry)[0] > priority]
    return max(lower, key=rank) if lower else None


def refused(name: str, waiting: int) -> Overloaded:
    metrics.REJECTED.labels(name, "queue_full").inc()
    return Overloaded(f"model {name!r} has {waiting} requests waiting; retry later",
                      retry_after=QUEUE_FULL_RETRY_S)


def shed(name: str) -> Overloaded:
    metrics.REJECTED.labels(name, "shed").inc()
    return Overloaded(f"model {name!r} is busy with higher-priority work; retry later",
                      retry_after=SHED_RETRY_S)


def expired(name: str, where: str = "while queued") -> DeadlineExceeded:
    metrics.REJECTED.labels(name, "deadline").inc()
    return DeadlineExceeded(f"request deadline passed {where}")
