"""Access to the engine from a route (set on app.state by the lifespan)."""

from __future__ import annotations

from fastapi import Request

from hfserve.errors import InvalidRequest
from hfserve.runtime.client import EngineClient
from hfserve.types import Task


def engine_of(request: Request) -> EngineClient:
    return request.app.state.engine


def note_model(request: Request, name: str) -> None:
    """Label the request's metrics with the served model ``name`` resolves to (a fixed
    label for unknown names: a client-chosen string never becomes a metric label)."""
    request.state.model = engine_of(request).label_of(name)


def choose_model(request: Request, given: str | None, task: Task | None) -> str:
    """The model a TEI or TGI request names (field, then X-Model), or the one model doing
    ``task`` (None: the one model served), as TEI and TGI serve one model per process and
    their clients name none."""
    name = given or request.headers.get("x-model")
    if name is None:
        able = [m["id"] for m in engine_of(request).models()
                if (task is None or task.value in m.get("tasks", ())) and not m.get("group")]
        if len(able) != 1:
            doing = f"do {task.value}" if task else "are served"
            raise InvalidRequest(f"{len(able)} models {doing}; name one with "
                                 "`model` or the X-Model header", param="model")
        name = able[0]
    note_model(request, name)
    return name
