"""POST /v1/completions wire types (the legacy endpoint evaluation harnesses score with)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hfserve.api.schemas.common import ExtraOptions, StreamOptions, Text, TokenIds, Usage
from hfserve.api.schemas.sampling import SamplingFields


class CompletionRequest(SamplingFields, ExtraOptions):
    model: str
    prompt: Text | Annotated[list[Text], Field(min_length=1)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1)] = Field(
        description="A prompt, prompts, token ids or lists of token ids")
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    suffix: None = Field(None, description="Not supported (only null)")
    best_of: int | None = Field(None, ge=1, le=1)
    stream_options: StreamOptions | None = None
    user: str | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: CompletionLogprobs | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
