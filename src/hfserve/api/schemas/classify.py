"""POST /v1/classify wire types: vLLM's classification form (which SGLang also serves)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hfserve.api.schemas.common import ExtraOptions, Text, Usage

Pair = Annotated[list[Text], Field(min_length=2, max_length=2)]


class ClassifyRequest(ExtraOptions):
    model: str
    input: Text | Annotated[list[Text | Pair], Field(min_length=1)] = Field(
        description="A text, or a list of texts or [text, text_pair] pairs; for an image "
        "classifier, an image or a list of images (data URLs or base64)")
    truncate: bool = Field(False, description="Cut inputs longer than the model's limit")
    candidate_labels: Annotated[list[Text], Field(min_length=1, max_length=64)] | None = Field(
        None, description="For a CLIP-style model: the labels each image is classified "
        "against, zero-shot (then probs are in this order)")
    hypothesis_template: str | None = Field(
        None, description="With candidate_labels: the text each label is put in, with {} "
        "where the label goes (default \"This is a photo of {}.\")")
    user: str | None = None


class ClassifyData(BaseModel):
    index: int
    label: str
    probs: list[float]
    num_classes: int


class ClassifyResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ClassifyData]
    usage: Usage
