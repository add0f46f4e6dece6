"""Image classification (ViT, ConvNeXt, DeiT...): one image in, every label's score out, as
transformers' image-classification pipeline computes them (softmax, or sigmoid for
multi-label and single-logit heads). Images are decoded and resized in ``prepare``, off the
event loop, with the model's own image processor (the numpy/PIL one, which needs no
torchvision); the batch is one forward pass over the stacked pixels."""

from __future__ import annotations

from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.skills.base import Prepared
from hfserve.skills.classification import Scores
from hfserve.skills.image_processing import ImageSkill, pixel_cost
from hfserve.types import Task


class ImageClassificationSkill(ImageSkill):
    task: ClassVar[Task] = Task.IMAGE_CLASSIFICATION

    def auto_class(self) -> Any:
        from transformers import AutoModelForImageClassification

        return AutoModelForImageClassification

    def load(self, placement: Placement) -> None:
        super().load(placement)
        config = self.model.config
        # transformers' pipeline: sigmoid for multi-label heads and a single logit.
        self.sigmoid = (config.problem_type == "multi_label_classification"
                        or config.num_labels == 1)

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        pixels = self.features(item)[0]["pixel_values"]
        return Prepared(payload=pixels, cost=pixel_cost(pixels))

    def run_batch(self, items: list[Prepared]) -> list[Scores]:
        import torch

        pixels = torch.cat([p.payload for p in items]).to(self.placement.device,
                                                          self.model.dtype)
        with torch.inference_mode():
            logits = self.model(pixel_values=pixels).logits.float().cpu()
        scores = torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, dim=-1)
        return [Scores(self.labels, s.tolist(), row.tolist())
                for s, row in zip(scores, logits, strict=True)]
