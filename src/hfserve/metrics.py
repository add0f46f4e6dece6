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
MODEL_READY = Gauge("hfserve_model_ready", "1 when a model is loaded and serving", ["model"])
LOAD_SECONDS = Histogram("hfserve_model_load_seconds", "Time to load a model", ["model"],
                         buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600))
REJECTED = Counter("hfserve_rejected_total", "Requests refused before running",
                   ["model", "reason"])
