"""POST /v1/infer/{model} wire types: the HuggingFace Inference API's form."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hfserve.api.schemas.common import ExtraOptions, Text


class InferRequest(ExtraOptions):
    inputs: Text | list[Text] = Field(description="A text or a list of texts")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The task's pipeline parameters: top_k for "
        "text-classification; aggregation_strategy and ignore_labels for "
        "token-classification; candidate_labels, hypothesis_template and multi_label for "
        "zero-shot-classification (an NLI model)")
