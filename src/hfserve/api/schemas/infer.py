"""POST /v1/infer/{model} wire types: the HuggingFace Inference API's form."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hfserve.api.schemas.common import ExtraOptions, Text


class InferRequest(ExtraOptions):
    inputs: Text | list[Text] = Field(description="A text or a list of texts; for image "
                                      "tasks, an image or a list of images (data URLs, "
                                      "base64 or allowed http(s) URLs)")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The task's pipeline parameters: top_k for "
        "text-classification and image-classification; aggregation_strategy and "
        "ignore_labels for token-classification; candidate_labels, hypothesis_template and "
        "multi_label for zero-shot-classification (an NLI model); candidate_labels and "
        "hypothesis_template for zero-shot-image-classification (a CLIP-style model); "
        "threshold for object-detection; subtask, threshold, mask_threshold and "
        "overlap_mask_area_threshold for image-segmentation")
    task: str | None = Field(
        None, description="Which of the model's tasks to run, for a model that serves several "
        "(e.g. fill-mask of a BERT served for embeddings too); default: its first one that "
        "/v1/infer serves")
