"""Model groups: GET /v1/groups/{group_id} (each arm's posterior and traffic share) and
POST /v1/feedback (a client's judgement of a response a group served)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hfserve.api.schemas.common import error_responses
from hfserve.api.schemas.groups import FeedbackRequest
from hfserve.api.state import engine_of, note_model

router = APIRouter(tags=["Groups"])


@router.get("/v1/groups/{group_id}", responses=error_responses(401, 404))
async def group(group_id: str, request: Request) -> dict[str, Any]:
    return engine_of(request).group(group_id)


@router.post("/v1/feedback", responses=error_responses(400, 401, 404))
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    result = engine_of(request).feedback(body.id, body.score)
    note_model(request, result["group"])
    return {"object": "feedback", "accepted": True, **result}
