"""The FastAPI application: routes, error handlers, middleware, engine lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from hfserve import __version__
from hfserve.api import errors
from hfserve.api.middleware import ApiKey, BodyLimit, RequestMetrics
from hfserve.api.routes import (
    admin,
    chat,
    classify,
    completions,
    embeddings,
    hardware,
    health,
    infer,
    info,
    models,
    rerank,
    tei,
    tgi,
)
from hfserve.config import Settings
from hfserve.runtime.client import EngineClient
from hfserve.runtime.engine import Engine  # the composition root: the one place it is built


def create_app(settings: Settings, engine: EngineClient | None = None) -> FastAPI:
    engine = engine or Engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = engine
        await engine.start()
        try:
            yield
        finally:
            await engine.close()

    app = FastAPI(title="hfserve", version=__version__, lifespan=lifespan,
                  description="One server for every HuggingFace model, behind the OpenAI API.")
    app.state.engine = engine
    app.include_router(info.models_router)
    for module in (models, embeddings, chat, completions, classify, rerank, infer, tei,
                   tgi, info, hardware, health):
        app.include_router(module.router)
    app.include_router(admin.router if settings.admin_routes else admin.off)
    errors.install(app)
    app.openapi = lambda: _openapi(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(ApiKey, key=settings.api_key)
    app.add_middleware(RequestMetrics)
    return app


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
