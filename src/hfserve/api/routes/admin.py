"""Admin routes: load a known model (progress as SSE with ``Accept: text/event-stream``),
unload it (requests in flight finish first), register a local model, forget one, add or
remove a LoRA adapter on a generation model. Off with
``admin_routes: false`` (then 404, as for any unknown route)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from hfserve.api.errors import envelope
from hfserve.api.schemas.admin import AdapterRequest, LoadRequest, RegisterRequest
from hfserve.api.schemas.common import ModelCard, error_responses
from hfserve.api.state import engine_of

router = APIRouter(tags=["admin"])
off = APIRouter()


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['event']}\ndata: {json.dumps(event)}\n\n".encode()


# Before the routes below: ``{model_id:path}`` would take ``BASE/adapters/NAME`` too.
@router.post("/v1/models/{model_id:path}/adapters", response_model=ModelCard, status_code=201,
             responses=error_responses(400, 401, 403, 404, 409, 503))
async def add_adapter(model_id: str, body: AdapterRequest, request: Request) -> ModelCard:
    return ModelCard(**await engine_of(request).add_adapter(model_id, body.name, body.path))


@router.delete("/v1/models/{model_id:path}/adapters/{name}", status_code=204,
               responses=error_responses(401, 404, 503))
async def remove_adapter(model_id: str, name: str, request: Request) -> Response:
    await engine_of(request).remove_adapter(model_id, name)
    return Response(status_code=204)


@router.post("/v1/models/{model_id:path}/load", response_model=ModelCard,
             responses={**error_responses(400, 401, 404, 503), 200: {
                 "content": {"text/event-stream": {"schema": {"type": "string"}}},
                 "description": "The model card, or progress events as SSE"}})
async def load_model(model_id: str, request: Request,
                     body: LoadRequest | None = None) -> Response:
    engine = engine_of(request)
    body = body or LoadRequest()
    events = engine.load_events(model_id, body.device, body.backend)
    if "text/event-stream" in request.headers.get("accept", ""):
        async def stream() -> AsyncIterator[bytes]:
            async for event in events:
                yield _sse(event)
        return StreamingResponse(stream(), media_type="text/event-stream")
    last: dict[str, Any] = {}
    async for event in events:
        last = event
    if last.get("event") == "error":
        headers = {"Retry-After": last["retry_after"]} if last.get("retry_after") else None
        return envelope(last["status"], last["message"], last["type"], "model", last["code"],
                        headers)
    return JSONResponse(ModelCard(**engine.describe(model_id)).model_dump())


@router.post("/v1/models/{model_id:path}/unload", response_model=ModelCard,
             responses=error_responses(401, 404))
async def unload_model(model_id: str, request: Request) -> ModelCard:
    return ModelCard(**await engine_of(request).unload_model(model_id))


@router.post("/v1/models", response_model=ModelCard, status_code=201,
             responses=error_responses(400, 401, 403, 409))
async def register_model(body: RegisterRequest, request: Request) -> ModelCard:
    return ModelCard(**await engine_of(request).register_model(body.model_dump()))


@router.delete("/v1/models/{model_id:path}", status_code=204,
               responses=error_responses(401, 404))
async def delete_model(model_id: str, request: Request) -> Response:
    await engine_of(request).forget_model(model_id)
    return Response(status_code=204)


@off.api_route("/v1/models/{model_id:path}/adapters", methods=["POST"],
               include_in_schema=False)
@off.api_route("/v1/models/{model_id:path}/load", methods=["POST"], include_in_schema=False)
@off.api_route("/v1/models/{model_id:path}/unload", methods=["POST"], include_in_schema=False)
@off.api_route("/v1/models", methods=["POST"], include_in_schema=False)
@off.api_route("/v1/models/{model_id:path}", methods=["DELETE"], include_in_schema=False)
async def admin_off(request: Request) -> JSONResponse:
    """The admin routes are off: the same 404 as any route this server does not have."""
    return envelope(404, f"no route {request.url.path}", "not_found_error", None, "not_found")
