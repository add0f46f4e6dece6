"""Prometheus metrics, defined once (``hfserve_`` prefix) and recorded where each fact lives."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("hfserve_requests_total", "HTTP requests by route, model and status",
                   ["route", "model", "status"])
REQUEST_LATENCY = Histogram("hfserve_request_duration_seconds", "End-to-end request latency",
                            ["route", "model"], buckets=LATENCY_BUCKETS)
QUEUE_DEPTH = Gauge("hfserve_queue_depth", "Requests waiting in a model's queue", ["model"])
BATCH_SIZE = Histogram("hfserve_batch_size", "Items per encoder batch or decode step",
                       ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
TOKENS = Counter("hfserve_tokens_total", "Tokens processed", ["model", "kind"])
TIME_TO_FIRST_TOKEN = Histogram("hfserve_time_to_first_token_seconds",
                                "Time from request to first generated token", ["model"],
                                buckets=LATENCY_BUCKETS)
RUNNING = Gauge("hfserve_running_sequences", "Sequences in the decode batch", ["model"])
REPLICA_REQUESTS = Counter("hfserve_replica_requests_total",
                           "Requests sent to each replica of a replicated model",
                           ["model", "replica"])
MODEL_READY = Gauge("hfserve_model_ready", "1 when a model is loaded and serving", ["model"])
LOAD_SECONDS = Histogram("hfserve_model_load_seconds", "Time to load a model", ["model"],
                         buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600))
REJECTED = Counter("hfserve_rejected_total", "Requests refused before running",
                   ["model", "reason"])
LOADS = Counter("hfserve_model_loads_total", "Model loads by outcome (ready, failed)",
                ["model", "outcome"])
EVICTIONS = Counter("hfserve_model_evictions_total",
                    "Models unloaded to make room for another or for being idle", ["model"])
RESIDENT_BYTES = Gauge("hfserve_model_resident_bytes",
                       "Memory a loaded model is counted for on its device", ["model"])
MODEL_STATE = Gauge("hfserve_model_state", "1 for the state a model is in, 0 for the others",
                    ["model", "state"])
BREAKER_STATE = Gauge("hfserve_breaker_state",
                      "1 for the state of a model's circuit breaker, 0 for the others",
                      ["model", "state"])
CACHE_REQUESTS = Counter("hfserve_cache_requests_total",
                         "Encoder inputs looked up in the response cache, by result (hit, miss)",
                         ["model", "result"])
CACHE_BYTES = Gauge("hfserve_cache_bytes", "Bytes the response cache holds")
CACHE_EVICTIONS = Counter("hfserve_cache_evictions_total",
                          "Response cache entries dropped for room or age")

MODEL_STATES = ("unloaded", "loading", "ready", "failed", "draining", "unsupported")
BREAKER_STATES = ("closed", "open", "half_open")


def set_state(model: str, state: str) -> None:
    for name in MODEL_STATES:
        MODEL_STATE.labels(model, name).set(1 if name == state else 0)


def set_breaker(model: str, state: str) -> None:
    for name in BREAKER_STATES:
        BREAKER_STATE.labels(model, name).set(1 if name == state else 0)


def forget_model(model: str) -> None:
    """Drop a forgotten model's gauges (counters stay: they are totals)."""
    for gauge, states in ((MODEL_STATE, MODEL_STATES), (BREAKER_STATE, BREAKER_STATES)):
        for state in states:
            try:
                gauge.remove(model, state)
            except KeyError:
                pass
    for gauge in (RESIDENT_BYTES, MODEL_READY):
        try:
            gauge.remove(model)
        except KeyError:
            pass
