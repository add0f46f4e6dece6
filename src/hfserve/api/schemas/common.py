"""Wire types shared by several routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Text = Annotated[str, Field(min_length=1)]
TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class Request(BaseModel):
    """Base of every request body: unknown fields are an error, NaN/inf are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=(),
                              strict=True)


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


ERROR_STATUSES = {
    400: "Invalid request (a field, a value, or a task the model does not serve)",
    401: "Missing or wrong API key (when one is set)",
    403: "The source lies outside the model roots",
    404: "No such model",
    409: "A model with that name exists already",
    413: "Request body too large",
    429: "The model's queue is full: retry after Retry-After seconds",
    499: "The client closed the request",
    500: "The model failed while running the request",
    503: "The model is loading or unavailable, or the server is shutting down",
    504: "The request's deadline passed",
}
MODEL_ERRORS = (400, 401, 404, 413, 429, 499, 500, 503, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route returns, in OpenAI's envelope."""
    return {status: {"model": ErrorResponse, "description": ERROR_STATUSES[status]}
            for status in statuses}


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
