"""Wire types of the routes Text Embeddings Inference (TEI) serves, as its OpenAPI document
gives them, plus an optional ``model`` (TEI serves one model per process, hfserve many)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from hfserve.api.schemas.common import Request, Text, TokenIds

ModelField = Field(None, description="The model; may be left out when one served model "
                   "does the task (or given as the X-Model header)")
Single = Annotated[list[Text], Field(min_length=1, max_length=1)]
Pair = Annotated[list[Text], Field(min_length=2, max_length=2)]


Parameters = Field(None, description="The same settings nested, as the HuggingFace "
                   "Inference API (and huggingface_hub's InferenceClient) sends them")


class EmbedParameters(Request):
    normalize: bool | None = None
    truncate: bool | None = None


class EmbedRequest(Request):
    inputs: Text | TokenIds | Annotated[list[Text | TokenIds], Field(min_length=1)]
    normalize: bool = True
    truncate: bool | None = False
    parameters: EmbedParameters | None = Parameters
    model: str | None = ModelField

    def settings(self) -> tuple[bool, bool]:
        """(normalize, truncate), nested parameters winning."""
        nested = self.parameters or EmbedParameters()
        normalize = self.normalize if nested.normalize is None else nested.normalize
        return normalize, bool(self.truncate if nested.truncate is None else nested.truncate)


class PredictRequest(Request):
    inputs: Text | Pair | Annotated[list[Single | Pair], Field(min_length=1)]
    raw_scores: bool = False
    truncate: bool | None = False
    model: str | None = ModelField


class Prediction(BaseModel):
    score: float
    label: str


class TEIRerankRequest(Request):
    query: Text
    texts: Annotated[list[Text], Field(min_length=1)]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool | None = False
    model: str | None = ModelField


class Rank(BaseModel):
    index: int
    score: float
    text: str | None = None


class SimilarityInput(Request):
    source_sentence: Text
    sentences: Annotated[list[Text], Field(min_length=1)]


class SimilarityParameters(Request):
    truncate: bool | None = False


class SimilarityRequest(Request):
    inputs: SimilarityInput
    parameters: SimilarityParameters | None = None
    model: str | None = ModelField


class EmbedAllRequest(Request):
    inputs: Text | TokenIds | Annotated[list[Text | TokenIds], Field(min_length=1)]
    truncate: bool | None = False
    model: str | None = ModelField


class TokenizeRequest(Request):
    inputs: Text | Annotated[list[Text], Field(min_length=1)]
    add_special_tokens: bool = True
    model: str | None = ModelField


class SimpleToken(BaseModel):
    id: int
    text: str
    special: bool
    start: int | None = None
    stop: int | None = None


class DecodeRequest(Request):
    ids: TokenIds | Annotated[list[TokenIds], Field(min_length=1)]
    skip_special_tokens: bool = True
    model: str | None = ModelField


class TEIError(BaseModel):
    error: str
    error_type: str
