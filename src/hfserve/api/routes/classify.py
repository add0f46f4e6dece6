"""POST /v1/classify: sequence classification, in vLLM's request and response form; for an
image classifier each input is an image (a data URL, base64, or an allowed http(s) URL), for
an audio classifier an audio file (a data URL or base64)."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hfserve.api.cache_control import use_cache
from hfserve.api.schemas.classify import ClassifyRequest, ClassifyResponse
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses, usage
from hfserve.api.state import engine_of, note_model
from hfserve.types import Task

router = APIRouter()


@router.post("/v1/classify", response_model=ClassifyResponse,
             responses=error_responses(*MODEL_ERRORS))
async def classify(body: ClassifyRequest, request: Request) -> Response:
    note_model(request, body.model)
    items = [body.input] if isinstance(body.input, str) else list(body.input)
    engine = engine_of(request)
    served = engine.describe(body.model).get("tasks", [])
    # A media classifier takes its medium (data URLs or base64); any other, text.
    task = next((t for t in (Task.IMAGE_CLASSIFICATION, Task.AUDIO_CLASSIFICATION)
                 if t in served), Task.TEXT_CLASSIFICATION)
    result = await engine.run(
        body.model, task, items, {"truncate": body.truncate},
        priority=body.priority, timeout=body.timeout, cache=use_cache(request))
    response = ClassifyResponse(
        id=f"classify-{uuid.uuid4().hex}", created=int(time.time()), model=result.model,
        data=[{"index": i, "label": s.labels[s.best], "probs": s.scores,
               "num_classes": len(s.labels)} for i, s in enumerate(result.results)],
        usage=usage(result.prompt_tokens))
    return Response(response.model_dump_json(), media_type="application/json")
