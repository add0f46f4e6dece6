"""Bodies of the model group routes."""

from __future__ import annotations

from pydantic import Field

from hfserve.api.schemas.common import Request


class FeedbackRequest(Request):
    id: str = Field(min_length=1, max_length=256, description="The response judged: its "
                    "X-Request-Id header, or its `id` (chatcmpl-...)")
    score: float = Field(ge=0, le=1, description="How good it was: 1 good, 0 bad")
