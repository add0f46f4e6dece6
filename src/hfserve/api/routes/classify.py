"""POST /v1/classify: sequence classification, in vLLM's request and response form; for an
image classifier each input is an image (a data URL, base64, or an allowed http(s) URL),
for a CLIP-style model an image classified zero-shot against ``candidate_labels``, and for
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
from hfserve.errors import InvalidRequest
from hfserve.types import Task

router = APIRouter()


def classify_task(served: list[str], body: ClassifyRequest) -> Task:
    """Images zero-shot (a CLIP-style model, given ``candidate_labels``), images or audio by
    a media classifier's own labels, or texts."""
    zero_shot = Task.ZERO_SHOT_IMAGE in served
    if body.candidate_labels is not None or (
            zero_shot and Task.IMAGE_CLASSIFICATION not in served):
        if not zero_shot:
            raise InvalidRequest(f"model {body.model!r} has labels of its own; "
                                 "candidate_labels need a CLIP-style model",
                                 param="candidate_labels")
        if body.candidate_labels is None:
            raise InvalidRequest(f"model {body.model!r} classifies images zero-shot: give "
                                 "candidate_labels", param="candidate_labels")
        return Task.ZERO_SHOT_IMAGE
    # A media classifier takes its medium (data URLs or base64); any other, text.
    return next((t for t in (Task.IMAGE_CLASSIFICATION, Task.AUDIO_CLASSIFICATION)
                 if t in served), Task.TEXT_CLASSIFICATION)


@router.post("/v1/classify", response_model=ClassifyResponse,
             responses=error_responses(*MODEL_ERRORS))
async def classify(body: ClassifyRequest, request: Request) -> Response:
    note_model(request, body.model)
    items = [body.input] if isinstance(body.input, str) else list(body.input)
    engine = engine_of(request)
    task = classify_task(engine.describe(body.model).get("tasks", []), body)
    options = {"truncate": body.truncate} if body.candidate_labels is None else {
        "candidate_labels": body.candidate_labels,
        "hypothesis_template": body.hypothesis_template}
    result = await engine.run(
        body.model, task, items, options,
        priority=body.priority, timeout=body.timeout, cache=use_cache(request))
    response = ClassifyResponse(
        id=f"classify-{uuid.uuid4().hex}", created=int(time.time()), model=result.model,
        data=[{"index": i, "label": s.labels[s.best], "probs": s.scores,
               "num_classes": len(s.labels)} for i, s in enumerate(result.results)],
        usage=usage(result.prompt_tokens))
    return Response(response.model_dump_json(), media_type="application/json")
