"""Sampling fields shared by chat and completions, and their translation to SamplingParams."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from hfserve.api.schemas.structured import StructuredFields
from hfserve.types import SamplingParams

INT32 = 2**31 - 1
INT64 = 2**63 - 1
TokenId = Annotated[int, Field(ge=0, le=INT32)]


class SamplingFields(StructuredFields):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=-1, le=INT32, description="-1 or 0: no top-k")
    n: int = Field(1, ge=1, le=16)
    max_tokens: int | None = Field(None, ge=0, le=INT32)
    stop: str | list[str] | None = None
    stop_token_ids: list[TokenId] | None = Field(None, max_length=64)
    ignore_eos: bool = False
    seed: int | None = Field(None, ge=-1, le=INT64, description="-1: a random seed")
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    stream: bool = False

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > 16 or any(not s for s in stops):
            raise ValueError("stop takes up to 16 non-empty strings")
        for stop in stops:
            try:
                stop.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("stop strings must be valid Unicode text (a lone surrogate "
                                 "is not)") from None
        return stops

    def sampling(self, logprobs: int | None = None,
                 prompt_logprobs: int | None = None) -> SamplingParams:
        return SamplingParams(
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=max(self.top_k or 0, 0),
            seed=None if self.seed == -1 else self.seed,
            stop=tuple(self.stop or ()),
            stop_token_ids=tuple(self.stop_token_ids or ()),
            ignore_eos=self.ignore_eos,
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            constraint=self.constraint(),
        )
