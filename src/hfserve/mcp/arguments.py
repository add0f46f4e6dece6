"""What each tool takes: one pydantic model per kind of tool, whose JSON schema is the
tool's ``inputSchema`` and which validates a call's arguments before the engine sees them.
Ranges are the HTTP API's (``api/schemas``), restated here because this front end may not
import that one; defaults that differ are the ones a tool-calling assistant needs (a bounded
``max_tokens``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SEED_MAX = 2**63 - 1
Texts = str | list[str]


class Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Literal["high", "normal", "low"] = Field(
        "normal", description="Queue priority beside the server's other requests")


class TextsArguments(Arguments):
    input: Texts = Field(..., min_length=1, description="A text or a list of texts")
    truncate: bool = Field(False, description="Cut texts longer than the model's limit")

    def items(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbedArguments(TextsArguments):
    dimensions: int | None = Field(None, ge=1, description="Keep the first N dimensions "
                                   "(Matryoshka models), renormalised")


class ZeroShotArguments(TextsArguments):
    candidate_labels: list[str] = Field(..., min_length=1,
                                        description="The labels to choose among")
    hypothesis_template: str | None = Field(
        None, description='NLI hypothesis with "{}" for the label (default "This example '
        'is {}.")')
    multi_label: bool = Field(False, description="Score each label on its own")


class TagArguments(TextsArguments):
    aggregation_strategy: Literal["none", "simple", "first", "average", "max"] = Field(
        "simple", description="How word pieces group into entities")


class FillMaskArguments(TextsArguments):
    top_k: int = Field(5, ge=1, le=100, description="Likeliest tokens per mask")


class RerankArguments(Arguments):
    query: str = Field(..., min_length=1)
    documents: list[str] = Field(..., min_length=1)
    top_n: int | None = Field(None, ge=1, description="Keep the N best (default: all)")


class SamplingArguments(Arguments):
    max_tokens: int = Field(512, ge=1, le=1 << 20, description="Tokens to generate at most")
    temperature: float | None = Field(None, ge=0, le=2, description="0: greedy")
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    stop: list[str] | None = Field(None, max_length=16,
                                   description="Texts that end the generation")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatArguments(SamplingArguments):
    messages: list[Message] = Field(..., min_length=1,
                                    description="The conversation so far, oldest first")


class CompleteArguments(SamplingArguments):
    prompt: str = Field(..., min_length=1, description="The text to continue")
