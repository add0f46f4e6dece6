"""Access to the engine from a route (set on app.state by the lifespan)."""

from __future__ import annotations

from fastapi import Request

from hfserve.runtime.client import EngineClient


def engine_of(request: Request) -> EngineClient:
    return request.app.state.engine


def note_model(request: Request, name: str) -> None:
    """Label the request's metrics with the served model ``name`` resolves to (a fixed
    label for unknown names: a client-chosen string never becomes a metric label)."""
    request.state.model = engine_of(request).label_of(name)
