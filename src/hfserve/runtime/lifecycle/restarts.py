"""How often a model whose worker keeps dying is loaded again: a budget per time window,
so a model that crashed a few times last week is still restarted today, and one that
crashes in a loop is given up on (and liveness then says so)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MAX_RESTARTS = 3          # restarts allowed within WINDOW_S
WINDOW_S = 600.0


class RestartBudget:
    def __init__(self, most: int = MAX_RESTARTS, window: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.most, self.window, self.clock = most, window, clock
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        """Count one restart now; False when the window already holds ``most``."""
        now = self.clock()
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) >= self.most:
            return False
        self._times.append(now)
        return True

    @property
    def recent(self) -> int:
        return len(self._times)
