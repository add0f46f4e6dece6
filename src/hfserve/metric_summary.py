"""A small JSON view of the server's own Prometheus metrics (``metrics.py``): totals, rates
and percentiles over a recent window, for a dashboard that has no Prometheus beside it.

Rates and percentiles come from the difference between the registry now and a snapshot of
it about ``window`` seconds ago; percentiles are estimated from histogram buckets the way
Prometheus' ``histogram_quantile`` does (linear inside the bucket)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hfserve import metrics

QUANTILES = (0.5, 0.9, 0.99)
# Requests of monitoring itself (probes, scrapes, a dashboard polling and loading its files)
# are left out of the request rate and latency: they would drown the traffic they watch.
MONITORING_ROUTES = frozenset({"/health", "/ready", "/metrics", "/metrics/summary"})
Buckets = dict[float, float]          # upper bound -> cumulative count, summed over labels


@dataclass(frozen=True)
class Snapshot:
    """Cumulative values at one moment."""

    requests: float
    tokens: dict[str, float]
    latency: Buckets
    ttft: Buckets
    batch: Buckets


def _samples(metric) -> Iterable[Any]:
    for family in metric.collect():
        yield from family.samples


def _served(labels: dict[str, str]) -> bool:
    route = labels.get("route", "")
    return route not in MONITORING_ROUTES and route != "/ui" and not route.startswith("/ui/")


def _total(metric) -> float:
    return sum(s.value for s in _samples(metric)
               if s.name.endswith("_total") and _served(s.labels))


def _by_label(metric, label: str, suffix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for s in _samples(metric):
        if s.name.endswith(suffix) and not s.name.endswith("_created"):
            out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
    return out


def _buckets(histogram) -> Buckets:
    out: Buckets = {}
    for s in _samples(histogram):
        if s.name.endswith("_bucket") and _served(s.labels):
            bound = float(s.labels["le"])
            out[bound] = out.get(bound, 0.0) + s.value
    return dict(sorted(out.items()))


def take() -> Snapshot:
    return Snapshot(requests=_total(metrics.REQUESTS),
                    tokens=_by_label(metrics.TOKENS, "kind", "_total"),
                    latency=_buckets(metrics.REQUEST_LATENCY),
                    ttft=_buckets(metrics.TIME_TO_FIRST_TOKEN),
                    batch=_buckets(metrics.BATCH_SIZE))


def quantile(q: float, buckets: Buckets) -> float | None:
    """The ``q`` quantile of observations counted in cumulative ``buckets`` (None when
    there are none); past the last finite bound, that bound."""
    if not buckets:
        return None
    total = buckets.get(math.inf, max(buckets.values()))
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    finite = [b for b in buckets if b != math.inf]
    for bound, count in buckets.items():
        if count >= rank:
            if bound == math.inf:
                return finite[-1] if finite else None
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return finite[-1] if finite else None


def _minus(now: Buckets, then: Buckets) -> Buckets:
    return {b: c - then.get(b, 0.0) for b, c in now.items()}


def _quantiles(buckets: Buckets) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": quantile(q, buckets) for q in QUANTILES}


@dataclass
class Summarizer:
    """Keeps snapshots at most one per ``spacing`` seconds for ``window`` seconds back."""

    window: float = 60.0
    spacing: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _kept: deque[tuple[float, Snapshot]] = field(default_factory=deque)

    def summary(self) -> dict[str, Any]:
        now, current = self.clock(), take()
        if not self._kept or now - self._kept[-1][0] >= self.spacing:
            self._kept.append((now, current))
        while len(self._kept) > 1 and now - self._kept[1][0] >= self.window:
            self._kept.popleft()          # the oldest kept one still reaches the window
        then, base = self._kept[0]
        span = now - then
        tokens = {kind: value - base.tokens.get(kind, 0.0)
                  for kind, value in current.tokens.items()}

        def rate(amount: float) -> float | None:
            return amount / span if span > 0 else None

        return {
            "time": time.time(), "window_seconds": span,
            "totals": {"requests": current.requests, "tokens": current.tokens},
            "requests_per_second": rate(current.requests - base.requests),
            "tokens_per_second": {kind: rate(value) for kind, value in tokens.items()},
            "latency_seconds": _quantiles(_minus(current.latency, base.latency)),
            "time_to_first_token_seconds": _quantiles(_minus(current.ttft, base.ttft)),
            "batch_size": _quantiles(_minus(current.batch, base.batch)),
            "queue_depth": _by_label(metrics.QUEUE_DEPTH, "model"),
            "running_sequences": _by_label(metrics.RUNNING, "model"),
        }
