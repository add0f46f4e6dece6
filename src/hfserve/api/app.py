"""The FastAPI application: routes, error handlers, middleware, engine lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from hfserve import __version__
from hfserve.api import errors
from hfserve.api.guard import Authenticate, HostGuard
from hfserve.api.middleware import BodyLimit, RequestMetrics
from hfserve.api.model_gate import ModelGate
from hfserve.api.ratelimit import RateLimit
from hfserve.api.routes import (
    admin,
    audio,
    chat,
    classify,
    completions,
    embeddings,
    groups,
    hardware,
    health,
    images,
    infer,
    info,
    models,
    rerank,
    responses,
    tei,
    tgi,
    ui,
    vision,
)
from hfserve.config import Settings
from hfserve.hardware import gauges
from hfserve.mcp.server import HttpTransport, transport_security
from hfserve.runtime.client import EngineClient
from hfserve.runtime.engine import Engine  # a composition root (stdio MCP is the other)
from hfserve.security.exposure import HostRule
from hfserve.security.keys import KeyRing
from hfserve.security.ratelimit import Limiter, Limits, open_store


def create_app(settings: Settings, engine: EngineClient | None = None) -> FastAPI:
    engine = engine or Engine(settings)
    gauges.register()
    limiter = Limiter(open_store(settings.rate_limit_store),
                      default=Limits(settings.rate_limit_rpm, settings.rate_limit_tpm),
                      models={mc.served_name: Limits(mc.rpm, mc.tpm)
                              for mc in settings.model_configs()})
    rule = HostRule(settings.allowed_hosts, settings.host, settings.cors_origins)
    mcp = HttpTransport(engine, transport_security(rule), settings.max_body_bytes) \
        if settings.mcp else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = engine
        await engine.start()
        try:
            if mcp is None:
                yield
            else:
                async with mcp.running():     # the MCP sessions' task group
                    yield
        finally:
            await engine.close()
            await limiter.store.close()

    app = FastAPI(title="hfserve", version=__version__, lifespan=lifespan,
                  description="One server for every HuggingFace model, behind the OpenAI API.")
    app.state.engine = engine
    app.include_router(info.models_router)
    for module in (models, groups, embeddings, audio, chat, responses, completions, classify,
                   rerank, images, infer, vision, tei, tgi, info, hardware, health):
        app.include_router(module.router)
    app.include_router(admin.router if settings.admin_routes else admin.off)
    if settings.ui:
        app.include_router(ui.router)
    if mcp is not None:
        app.router.add_route("/mcp", mcp.app, include_in_schema=False)
    errors.install(app)
    app.openapi = lambda: _openapi(app)
    _add_middleware(app, settings, limiter, rule)
    return app


RATE_HEADERS = [f"x-ratelimit-{what}-{kind}" for what in ("limit", "remaining", "reset")
                for kind in ("requests", "tokens")]


def _add_middleware(app: FastAPI, settings: Settings, limiter: Limiter,
                    rule: HostRule) -> None:
    """Listed innermost first (each one added wraps those before): the request meets them
    bottom up, so who the caller is and whether the host is right are settled before a body
    is read, and the model named is known before rate limits are checked."""
    app.add_middleware(RateLimit, limiter=limiter)
    app.add_middleware(ModelGate, per_model=bool(limiter.models))
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Authenticate, ring=KeyRing(settings.keys),
                       public_docs=settings.public_docs_and_metrics,
                       admin_routes=settings.admin_routes)
    app.add_middleware(HostGuard, rule=rule)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["*"], allow_headers=["*"],
                           expose_headers=["x-request-id", "x-hfserve-model", "retry-after",
                                           *RATE_HEADERS])
    app.add_middleware(RequestMetrics)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document without the 422 it adds to every route with a body: this server
    answers invalid input with 400 (the OpenAI envelope), as each route documents (TEI's
    routes document their own 422)."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if "HTTPValidationError" in str(responses.get("422", "")):
                    responses.pop("422")
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
