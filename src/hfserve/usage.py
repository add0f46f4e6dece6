"""Tokens a request used, recorded where they become known (the engine's encoder results,
a generation's end) into the meter of the request in progress, if any. A front end that
meters (rate limits by tokens) opens one around the request; the code that counts needs
to know nothing of who asked."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Meter:
    tokens: int = 0


_CURRENT: ContextVar[Meter | None] = ContextVar("hfserve_usage_meter", default=None)


def record(tokens: int) -> None:
    """Add ``tokens`` to the meter of the request in progress (nothing if none is open)."""
    meter = _CURRENT.get()
    if meter is not None and tokens > 0:
        meter.tokens += tokens


@contextmanager
def metering() -> Iterator[Meter]:
    """A meter for everything this context (and the tasks it starts) records."""
    meter = Meter()
    token = _CURRENT.set(meter)
    try:
        yield meter
    finally:
        _CURRENT.reset(token)
