"""POST /v1/embeddings: texts or token ids; for a CLIP-style model also images, with
Infinity's ``modality`` field."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from hfserve.api.cache_control import use_cache
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses, usage
from hfserve.api.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from hfserve.api.state import engine_of, note_model
from hfserve.errors import InvalidRequest
from hfserve.types import Task

router = APIRouter()


def inputs_of(value: str | list) -> list:
    """A string, a list of strings, one token list, or a list of token lists -> items."""
    if isinstance(value, str):
        return [value]
    if value and all(isinstance(t, int) for t in value):
        return [value]
    return list(value)


def encode(vector: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector.tolist()


@router.post("/v1/embeddings", response_model=EmbeddingResponse,
             responses=error_responses(*MODEL_ERRORS))
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    note_model(request, body.model)
    engine = engine_of(request)
    if body.modality == "image" and Task.ZERO_SHOT_IMAGE not in engine.describe(
            body.model).get("tasks", []):
        raise InvalidRequest(f"model {body.model!r} embeds text only; image embeddings need "
                             "a CLIP-style model", param="modality", code="unsupported_task")
    # the modality is an option, so it is part of each input's response-cache key
    result = await engine.run(
        body.model, Task.EMBEDDING, inputs_of(body.input),
        {"truncate": body.truncate, "dimensions": body.dimensions, "modality": body.modality},
        priority=body.priority, timeout=body.timeout, cache=use_cache(request))
    response = EmbeddingResponse(
        data=[{"index": i, "embedding": encode(v, body.encoding_format)}
              for i, v in enumerate(result.results)],
        model=result.model, usage=usage(result.prompt_tokens))
    return Response(response.model_dump_json(), media_type="application/json")
