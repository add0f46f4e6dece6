"""Wire types shared by several routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Request(BaseModel):
    """Base of every request body: unknown fields are an error, NaN/inf are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class StreamOptions(Request):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelCard(BaseModel):
    """OpenAI's model object plus what this server knows about it."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "hfserve"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ExtraOptions(Request):
    """Fields this server adds to OpenAI's (send them with ``extra_body``)."""

    priority: Literal["high", "normal", "low"] = "normal"
    timeout: float | None = Field(None, gt=0, description="Seconds before a 504")


def usage(prompt: int, completion: int = 0) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}
