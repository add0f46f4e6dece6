"""Percentiles from histogram buckets and the summary's window, with a fake clock."""

from __future__ import annotations

import math

import pytest

from hfserve import metrics
from hfserve.metric_summary import Summarizer, quantile


def test_quantile_interpolates_inside_the_bucket_as_prometheus_does() -> None:
    buckets = {1.0: 0.0, 2.0: 10.0, 4.0: 20.0, math.inf: 20.0}
    assert quantile(0.5, buckets) == pytest.approx(2.0)
    assert quantile(0.25, buckets) == pytest.approx(1.5)
    assert quantile(0.75, buckets) == pytest.approx(3.0)


def test_quantile_past_the_last_bound_is_that_bound_and_none_when_empty() -> None:
    assert quantile(0.99, {1.0: 1.0, 5.0: 1.0, math.inf: 10.0}) == 5.0
    assert quantile(0.5, {1.0: 0.0, math.inf: 0.0}) is None
    assert quantile(0.5, {}) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates_and_percentiles_cover_only_the_window() -> None:
    clock = Clock()
    summarizer = Summarizer(window=10, spacing=1, clock=clock)
    model = "summary-unit-model"
    first = summarizer.summary()
    assert first["requests_per_second"] is None          # one snapshot: no span yet
    for _ in range(20):
        metrics.REQUESTS.labels("/x", model, "200").inc()
        metrics.REQUEST_LATENCY.labels("/x", model).observe(3.0)   # slow, long ago
    metrics.TOKENS.labels(model, "completion").inc(50)
    clock.now += 5
    later = summarizer.summary()
    assert later["window_seconds"] == pytest.approx(5)
    assert later["requests_per_second"] == pytest.approx(20 / 5)
    assert later["tokens_per_second"]["completion"] == pytest.approx(50 / 5)
    assert 2.5 < later["latency_seconds"]["p50"] <= 5
    # Past the window the slow requests drop out; fast ones are all that is left.
    clock.now += 11
    summarizer.summary()
    for _ in range(10):
        metrics.REQUEST_LATENCY.labels("/x", model).observe(0.004)
    clock.now += 1
    recent = summarizer.summary()
    assert recent["latency_seconds"]["p99"] <= 0.005
    assert recent["requests_per_second"] == pytest.approx(0)
    assert recent["window_seconds"] <= 12


def test_monitoring_requests_are_not_traffic() -> None:
    clock = Clock()
    summarizer = Summarizer(window=10, spacing=1, clock=clock)
    summarizer.summary()
    for route in ("/metrics/summary", "/ready", "/ui", "/ui/app.js"):
        metrics.REQUESTS.labels(route, "", "200").inc()
        metrics.REQUEST_LATENCY.labels(route, "").observe(50.0)
    metrics.REQUESTS.labels("/v1/embeddings", "summary-unit-model", "200").inc()
    metrics.REQUEST_LATENCY.labels("/v1/embeddings", "summary-unit-model").observe(0.004)
    clock.now += 1
    summary = summarizer.summary()
    assert summary["requests_per_second"] == pytest.approx(1)
    assert summary["latency_seconds"]["p99"] <= 0.005
