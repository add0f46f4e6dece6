"""GET /v1/hardware: what this machine offers and what runs where."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hfserve.api.schemas.common import error_responses
from hfserve.api.state import engine_of

router = APIRouter()


@router.get("/v1/hardware", responses=error_responses(401))
async def hardware(request: Request) -> dict[str, Any]:
    return engine_of(request).hardware()
