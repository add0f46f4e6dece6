"""POST /v1/detect (object detection) and POST /v1/segment (image segmentation): images in,
each image's objects or segments out, batched with other requests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hfserve.api.cache_control import use_cache
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses, usage
from hfserve.api.schemas.vision import (
    DetectRequest,
    DetectResponse,
    SegmentRequest,
    SegmentResponse,
)
from hfserve.api.state import engine_of, note_model
from hfserve.types import Task

router = APIRouter()


async def _run(body: DetectRequest | SegmentRequest, request: Request, task: Task,
               options: dict[str, Any], field: str, prefix: str) -> dict[str, Any]:
    note_model(request, body.model)
    items = [body.input] if isinstance(body.input, str) else list(body.input)
    result = await engine_of(request).run(body.model, task, items, options,
                                          priority=body.priority, timeout=body.timeout,
                                          cache=use_cache(request))
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()),
            "model": result.model, "usage": usage(result.prompt_tokens),
            "data": [{"index": i, field: r} for i, r in enumerate(result.results)]}


@router.post("/v1/detect", response_model=DetectResponse,
             responses=error_responses(*MODEL_ERRORS))
async def detect(body: DetectRequest, request: Request) -> Response:
    answer = await _run(body, request, Task.OBJECT_DETECTION, {"threshold": body.threshold},
                        "objects", "detect")
    return Response(DetectResponse(**answer).model_dump_json(), media_type="application/json")


@router.post("/v1/segment", response_model=SegmentResponse,
             responses=error_responses(*MODEL_ERRORS))
async def segment(body: SegmentRequest, request: Request) -> Response:
    options = body.model_dump(include={"subtask", "threshold", "mask_threshold",
                                       "overlap_mask_area_threshold"})
    answer = await _run(body, request, Task.IMAGE_SEGMENTATION, options, "segments",
                        "segment")
    return Response(SegmentResponse(**answer).model_dump_json(),
                    media_type="application/json")
