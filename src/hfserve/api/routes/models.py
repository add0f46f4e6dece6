"""GET /v1/models and /v1/models/{id}: OpenAI's model objects plus state, architecture,
tasks, device and why it runs there."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hfserve.api.schemas.common import ModelCard, ModelList, error_responses
from hfserve.api.state import engine_of

router = APIRouter()


@router.get("/v1/models", response_model=ModelList, responses=error_responses(401))
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[ModelCard(**info) for info in engine_of(request).models()])


@router.get("/v1/models/{model_id:path}", response_model=ModelCard,
            responses=error_responses(401, 404))
async def get_model(model_id: str, request: Request) -> ModelCard:
    return ModelCard(**engine_of(request).describe(model_id))
