"""Liveness, readiness, Prometheus metrics and their JSON summary."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hfserve.api.schemas.common import error_responses
from hfserve.api.state import engine_of
from hfserve.metric_summary import Summarizer

router = APIRouter()
# One per process, like the registry it reads: every dashboard sees the same window.
SUMMARY = Summarizer()


STATUS = {"content": {"application/json": {"schema": {"type": "object"}}}}


@router.get("/health", responses={200: {"description": "Alive"},
                                  503: {**STATUS, "description": "A model failed for good"}})
async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers, and no model failed while serving for good (one
    whose worker kept dying past its restart budget: 503 with its error, so that an
    orchestrator restarts the server; the other models keep serving until then). Cheap
    on purpose."""
    broken = engine_of(request).broken()
    if broken:
        return JSONResponse({"status": "failed", "models": broken}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready", responses={
    200: {"description": "Every model serves"},
    503: {**STATUS, "description": "Some model is not serving, or the server is draining"}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: every model that should serve does. A model loading at start-up, a
    configured model that failed, an open circuit breaker or a dead worker keep it at 503;
    a model unloaded (it loads on its first request) or unsupported does not. ``breakers``
    lists the models whose breaker is not closed."""
    engine = engine_of(request)
    ok, states = engine.ready()
    body: dict = {"status": "ready" if ok else "not_ready", "models": states}
    breakers = engine.breakers()
    if breakers:
        body["breakers"] = breakers
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
          "description": "Prometheus text exposition"},
    **error_responses(401)})
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics/summary", responses={200: {**STATUS, "description": (
    "Totals, and rates and percentiles over about the last minute")}, **error_responses(401)})
async def metrics_summary() -> JSONResponse:
    """Requests/s, tokens/s by kind, latency, time-to-first-token and batch size
    percentiles over the window since the oldest snapshot kept (``window_seconds``; rates
    are null on the first call), and each model's queue depth and running sequences now."""
    return JSONResponse(SUMMARY.summary())
