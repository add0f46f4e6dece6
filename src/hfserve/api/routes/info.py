"""GET /info as Text Embeddings Inference (for an encoder model) or Text Generation Inference
(for a generative one) answers it, and GET /v1/models/{id}/info, which gives the same for any
served model. TEI and TGI serve one model per process; here the ``model`` query parameter or
the X-Model header chooses, and may be left out when one model is served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from hfserve import __version__
from hfserve.api.family_errors import route_class
from hfserve.api.routes.tei import RESPONSES, tei_error
from hfserve.api.schemas.common import error_responses
from hfserve.api.state import choose_model, engine_of, note_model
from hfserve.types import Task

# The most stop sequences a request may carry (the request schemas' bound).
MAX_STOP_SEQUENCES = 16

router = APIRouter(route_class=route_class(tei_error), tags=["Model information"])


@router.get("/info", responses=RESPONSES)
async def info(request: Request, model: str | None = Query(None)) -> JSONResponse:
    name = choose_model(request, model, None)
    return JSONResponse(model_info(engine_of(request).describe(name)))


# Registered before /v1/models/{id} (whose id may hold slashes), so this path is reached.
models_router = APIRouter(tags=["Models"])


@models_router.get("/v1/models/{model_id:path}/info", responses=error_responses(401, 404))
async def info_of(model_id: str, request: Request) -> JSONResponse:
    note_model(request, model_id)
    card = engine_of(request).describe(model_id)
    return JSONResponse({**card, "info": model_info(card)})


def model_info(card: dict[str, Any]) -> dict[str, Any]:
    """TGI's Info for a generative model, TEI's for any other."""
    tasks = card.get("tasks") or []
    limits = card.get("limits") or {}
    common = {"model_id": card["id"], "model_sha": None, "model_dtype": card.get("dtype"),
              "max_concurrent_requests": limits.get("max_queue"),
              "version": __version__, "sha": None, "docker_label": None}
    if Task.TEXT_GENERATION.value in tasks or Task.TEXT2TEXT.value in tasks:
        total = card.get("max_context")
        return {**common, "model_device_type": card.get("device"),
                "model_pipeline_tag": card.get("task"), "max_best_of": 1,
                "max_stop_sequences": MAX_STOP_SEQUENCES,
                "max_input_tokens": total - 1 if total else None, "max_total_tokens": total,
                "validation_workers": 1,
                "max_client_batch_size": limits.get("max_request_sequences"),
                "router": "hfserve"}
    return {**common, "model_type": _tei_model_type(card, tasks),
            "max_input_length": card.get("max_input_length") or card.get("max_context"),
            "max_batch_tokens": limits.get("max_batch_tokens"),
            "max_batch_requests": limits.get("max_batch_size"),
            "max_client_batch_size": limits.get("max_request_items"),
            "auto_truncate": False, "tokenization_workers": 1}


def _tei_model_type(card: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
    labels = card.get("labels")
    if labels is not None:
        table = {"id2label": {str(i): name for i, name in enumerate(labels)},
                 "label2id": {name: i for i, name in enumerate(labels)}}
        kind = "reranker" if len(labels) == 1 else "classifier"
        return {kind: table}
    if Task.EMBEDDING.value in tasks:
        return {"embedding": {"pooling": card.get("pooling") or "mean"}}
    return {card.get("task") or "unknown": {}}
