"""Rate limits as token buckets: requests and tokens per minute, per key and per model.

A bucket holds up to ``capacity`` units and refills at ``capacity / window`` per second. A
request takes one unit from each requests bucket that applies and needs at least one unit in
each tokens bucket; its tokens (prompt + generated) are charged when known, after the fact,
so a tokens bucket may go into debt and the next requests wait until it refilled. Checks of
one request are atomic across its buckets: all pass and take, or none takes. The store
(this process, or Redis for several servers) only keeps levels; this module decides."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 60.0
MAX_REMEMBERED_CHECKS = 4096      # (caller, model) pairs; keys and models are configured
REQUESTS, TOKENS = "requests", "tokens"


@dataclass(frozen=True)
class Check:
    """One bucket a request must pass: take ``cost`` units, having at least ``need``."""

    bucket: str
    kind: str          # REQUESTS or TOKENS
    capacity: float
    window_s: float = WINDOW_S

    @property
    def rate(self) -> float:
        return self.capacity / self.window_s

    @property
    def cost(self) -> float:
        return 1.0 if self.kind == REQUESTS else 0.0

    @property
    def need(self) -> float:
        return 1.0


def refilled(level: float, stamp: float, now: float, check: Check) -> float:
    """The level of a bucket last at ``level`` at ``stamp``, at ``now``."""
    return min(check.capacity, level + max(0.0, now - stamp) * check.rate)


def settle(levels: Sequence[float], checks: Sequence[Check]) -> tuple[bool, list[float]]:
    """Whether every check passes at these (refilled) levels, and the levels after (taken
    from only when all pass). The Redis store's script does the same."""
    allowed = all(level >= c.need for level, c in zip(levels, checks, strict=True))
    after = [level - c.cost if allowed else level for level, c in zip(levels, checks,
                                                                     strict=True)]
    return allowed, after


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    levels: list[float]          # after the request, one per check


class Store(Protocol):
    async def take(self, checks: Sequence[Check]) -> Outcome: ...

    async def charge(self, checks: Sequence[Check], amount: float) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """Buckets of this process (a missing bucket is full). ``take`` and ``charge`` never
    await between reading and writing a bucket, so on the one event loop they are atomic
    without a lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}   # name -> (level, stamp)

    def _levels(self, checks: Sequence[Check], now: float) -> list[float]:
        out = []
        for c in checks:
            level, stamp = self._buckets.get(c.bucket, (c.capacity, now))
            out.append(refilled(level, stamp, now, c))
        return out

    async def take(self, checks: Sequence[Check]) -> Outcome:
        now = self.clock()
        allowed, after = settle(self._levels(checks, now), checks)
        for c, level in zip(checks, after, strict=True):
            self._buckets[c.bucket] = (level, now)
        return Outcome(allowed, after)

    async def charge(self, checks: Sequence[Check], amount: float) -> None:
        now = self.clock()
        for c, level in zip(checks, self._levels(checks, now), strict=True):
            self._buckets[c.bucket] = (level - amount, now)

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float                # seconds until every failed check would pass
    headers: dict[str, str]           # x-ratelimit-*

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


def duration(seconds: float) -> str:
    """OpenAI's form of a reset time: 20ms, 1.5s, 6m0s."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def decide(checks: Sequence[Check], outcome: Outcome) -> Decision:
    """The answer to one request: allowed or not, when to retry, and OpenAI's
    ``x-ratelimit-*`` headers of the tightest bucket of each kind."""
    retry = 0.0
    if not outcome.allowed:
        retry = max((c.need - level) / c.rate for c, level in
                    zip(checks, outcome.levels, strict=True) if level < c.need)
    headers: dict[str, str] = {}
    for kind in (REQUESTS, TOKENS):
        mine = [(level, c) for c, level in zip(checks, outcome.levels, strict=True)
                if c.kind == kind]
        if not mine:
            continue
        level, c = min(mine, key=lambda lc: lc[0])
        headers[f"x-ratelimit-limit-{kind}"] = str(int(c.capacity))
        headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(level)))
        headers[f"x-ratelimit-reset-{kind}"] = duration((c.capacity - level) / c.rate)
    return Decision(outcome.allowed, retry, headers)


@dataclass(frozen=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None

    def checks(self, prefix: str) -> list[Check]:
        out = []
        if self.rpm:
            out.append(Check(f"{prefix}:{REQUESTS}", REQUESTS, float(self.rpm)))
        if self.tpm:
            out.append(Check(f"{prefix}:{TOKENS}", TOKENS, float(self.tpm)))
        return out


class Limiter:
    """The limits of keys and models over one store. ``admit`` before the work, ``charge``
    its tokens once known."""

    def __init__(self, store: Store, *, default: Limits = Limits(),
                 models: dict[str, Limits] | None = None, prefix: str = "hfserve:rl") -> None:
        self.store, self.default, self.prefix = store, default, prefix
        self.models = {m: lim for m, lim in (models or {}).items() if lim.rpm or lim.tpm}
        # The checks of each (caller, limits, model) seen: built once, not per request.
        self._checks: dict[tuple[str, Limits, str | None], list[Check]] = {}

    def enabled(self) -> bool:
        return bool(self.default.rpm or self.default.tpm or self.models)

    def checks(self, caller: str, limits: Limits, model: str | None) -> list[Check]:
        key = (caller, limits, model if model in self.models else None)
        found = self._checks.get(key)
        if found is None:
            if len(self._checks) >= MAX_REMEMBERED_CHECKS:
                self._checks.clear()
            found = self._checks[key] = self._build_checks(*key)
        return found

    def _build_checks(self, caller: str, limits: Limits, model: str | None) -> list[Check]:
        own = Limits(limits.rpm or self.default.rpm, limits.tpm or self.default.tpm)
        out = own.checks(f"{self.prefix}:key:{caller}")
        if model is not None and model in self.models:
            out += self.models[model].checks(f"{self.prefix}:model:{model}")
        return out

    async def admit(self, checks: Sequence[Check]) -> Decision | None:
        """None when no limit applies."""
        if not checks:
            return None
        return decide(checks, await self.store.take(checks))

    async def charge(self, checks: Sequence[Check], tokens: int) -> None:
        tokens_checks = [c for c in checks if c.kind == TOKENS]
        if tokens > 0 and tokens_checks:
            await self.store.charge(tokens_checks, float(tokens))


def open_store(where: str) -> Store:
    """The store a ``rate_limit_store`` setting names: memory, or a redis:// URL."""
    if where == "memory":
        return MemoryStore()
    from hfserve.security.redis_store import RedisStore

    return RedisStore(where)
