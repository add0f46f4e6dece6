"""Access to the engine from a route (set on app.state by the lifespan)."""

from __future__ import annotations

from fastapi import Request

from hfserve.runtime.engine import Engine


def engine_of(request: Request) -> Engine:
    return request.app.state.engine
