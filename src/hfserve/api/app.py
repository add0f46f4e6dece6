"""The FastAPI application: routes, error handlers, middleware, engine lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from hfserve import __version__
from hfserve.api import errors
from hfserve.api.middleware import ApiKey, BodyLimit, RequestMetrics
from hfserve.api.routes import chat, completions, embeddings, hardware, health, models
from hfserve.config import Settings
from hfserve.runtime.engine import Engine


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
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
    for module in (models, embeddings, chat, completions, hardware, health):
        app.include_router(module.router)
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(ApiKey, key=settings.api_key)
    app.add_middleware(RequestMetrics)
    return app
