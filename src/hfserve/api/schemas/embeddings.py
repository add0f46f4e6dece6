"""POST /v1/embeddings wire types."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hfserve.api.schemas.common import ExtraOptions, Text, TokenIds, Usage


class EmbeddingRequest(ExtraOptions):
    model: str
    input: Text | Annotated[list[Text], Field(min_length=1)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1)] = Field(
        description="A text, texts, token ids or lists of token ids (none empty)")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    truncate: bool = Field(False, description="Cut inputs longer than the model's limit")
    modality: Literal["text", "image"] = Field(
        "text", description="Infinity's field: with image, each input is an image (a data "
        "URL, base64, or an allowed http(s) URL) for a CLIP-style model")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage
