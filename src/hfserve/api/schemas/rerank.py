"""POST /v1/rerank (the Cohere/Jina form vLLM and Infinity serve) and POST /v1/score (vLLM's
``text_1``/``text_2`` pairs) wire types."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hfserve.api.schemas.common import ExtraOptions, Request, Text, Usage


class TextDocument(Request):
    text: Text


class RerankRequest(ExtraOptions):
    model: str
    query: Text
    documents: Annotated[list[Text | TextDocument], Field(min_length=1)]
    top_n: int | None = Field(None, ge=1, description="Return the n best (default: all)")
    return_documents: bool = True
    truncate: bool = Field(False, description="Cut pairs longer than the model's limit")


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    usage: Usage


Texts = Text | Annotated[list[Text], Field(min_length=1)]


class ScoreRequest(ExtraOptions):
    model: str
    text_1: Texts
    text_2: Texts
    truncate: bool = Field(False, description="Cut pairs longer than the model's limit")


class ScoreData(BaseModel):
    index: int
    object: Literal["score"] = "score"
    score: float


class ScoreResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: Usage
