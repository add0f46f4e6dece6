"""A circuit breaker per model: after ``failures`` model errors in a row it opens, and for
``open_s`` every request fails fast (503 + Retry-After) instead of queueing behind a model that
fails anyway; then it lets one probe through (half-open): a success closes it, a failure opens
it again.

It counts what a model did wrong on requests (a failed load, an error in a batch). A model
process that exits is the restart budget's (``runtime/lifecycle/restarts.py``), which decides
whether the model is loaded again; such an exit also counts here as one failure, so a model that
dies on every request opens its breaker before it spends the budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from hfserve.errors import (
    DeadlineExceeded,
    HFServeError,
    MemoryExhausted,
    ModelLoading,
    ServerShuttingDown,
)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failures: int = 5, open_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures, self.open_s, self.clock = failures, open_s, clock
        self.consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self.clock() - self._opened_at >= self.open_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a request may go to the model now; True for the one probe of a half-open
        breaker (the requests after it fail fast until it has answered)."""
        state = self.state
        if state == BreakerState.CLOSED:
            return True
        if state == BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until a probe may go through (at least 1)."""
        if self._opened_at is None:
            return 1.0
        return max(1.0, self.open_s - (self.clock() - self._opened_at))

    def success(self) -> None:
        self.consecutive, self._opened_at, self._probing = 0, None, False

    def failure(self) -> None:
        self.consecutive += 1
        if self._probing or self.consecutive >= self.failures:
            self._opened_at, self._probing = self.clock(), False

    def release_probe(self) -> None:
        """The probe ended without telling (a client error, a cancel): let the next one in."""
        self._probing = False


def model_failure(exc: BaseException) -> bool:
    """Whether an error is the model's own (it counts against the breaker): a 5xx that is
    not about capacity, a deadline, a cancel or the server stopping."""
    if not isinstance(exc, HFServeError):
        return isinstance(exc, Exception)
    return exc.status >= 500 and not isinstance(
        exc, ModelLoading | MemoryExhausted | ServerShuttingDown | DeadlineExceeded)
