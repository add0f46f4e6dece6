"""POST /v1/images/generations: images from a prompt (diffusers text-to-image pipelines), in
OpenAI's form. Each image is one item of the model's batch; a request with a seed may be
answered from the response cache, one without never is (each asks for new images)."""

from __future__ import annotations

import base64
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hfserve.api.cache_control import use_cache
from hfserve.api.schemas.common import MODEL_ERRORS, error_responses
from hfserve.api.schemas.images import ImageGenerationRequest, ImageGenerationResponse
from hfserve.api.state import engine_of, note_model
from hfserve.types import Task

router = APIRouter()


@router.post("/v1/images/generations", response_model=ImageGenerationResponse,
             responses=error_responses(*MODEL_ERRORS))
async def generate_images(body: ImageGenerationRequest, request: Request) -> Response:
    note_model(request, body.model)
    items = [{"prompt": body.prompt, "seed": seed} for seed in body.seeds()]
    result = await engine_of(request).run(
        body.model, Task.TEXT_TO_IMAGE, items, body.options(), priority=body.priority,
        timeout=body.timeout, cache=body.seed is not None and use_cache(request))
    response = ImageGenerationResponse(
        created=int(time.time()),
        data=[{"b64_json": base64.b64encode(png).decode()} for png in result.results])
    return Response(response.model_dump_json(), media_type="application/json")
