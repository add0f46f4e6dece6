"""GET /v1/hardware: what this machine offers and what runs where."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hfserve.api.state import engine_of

router = APIRouter()


@router.get("/v1/hardware")
async def hardware(request: Request) -> dict[str, Any]:
    return engine_of(request).hardware()
