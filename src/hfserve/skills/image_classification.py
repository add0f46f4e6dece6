"""Image classification (ViT, ConvNeXt, DeiT...): one image in, every label's score out, as
transformers' image-classification pipeline computes them (softmax, or sigmoid for
multi-label and single-logit heads). Images are decoded and resized in ``prepare``, off the
event loop, with the model's own image processor (the numpy/PIL one, which needs no
torchvision); the batch is one forward pass over the stacked pixels."""

from __future__ import annotations

from typing import Any, ClassVar

from hfserve.media.images import ImageLimits, load_image
from hfserve.skills.base import BatchSkill, Placement, Prepared
from hfserve.skills.classification import Scores
from hfserve.skills.torch_backend import load_torch_model
from hfserve.types import Task


def image_processor(spec: Any) -> Any:
    """The folder's image processor, its PIL/numpy class (``...ImageProcessorPil``): the
    default ones, and ``AutoImageProcessor`` itself, need torchvision."""
    import json

    import transformers

    saved = json.loads((spec.path / "preprocessor_config.json").read_text())
    name = str(saved.get("image_processor_type", "")).removesuffix("Fast")
    cls = getattr(transformers, name + "Pil", None) or getattr(transformers, name)
    # a class of transformers' own: no code of the folder's runs, whatever the setting
    return cls.from_pretrained(str(spec.path), trust_remote_code=False)


def pixel_cost(pixel_values: Any) -> int:
    """An image's share of the batch budget: its 16x16 patches, as a ViT counts tokens."""
    return max(1, int(pixel_values.shape[-1]) * int(pixel_values.shape[-2]) // 256)


class ImageClassificationSkill(BatchSkill):
    task: ClassVar[Task] = Task.IMAGE_CLASSIFICATION
    backends: ClassVar[tuple[str, ...]] = ("torch",)

    def load(self, placement: Placement) -> None:
        from transformers import AutoModelForImageClassification

        self.placement = placement
        self.processor = image_processor(self.spec)
        self.model = load_torch_model(AutoModelForImageClassification, self.spec, placement)
        self.limits = ImageLimits.of(self.spec.options)
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        # transformers' pipeline: sigmoid for multi-label heads and a single logit.
        self.sigmoid = (config.problem_type == "multi_label_classification"
                        or config.num_labels == 1)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "labels": self.labels}

    def unload(self) -> None:
        self.model = None

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        image = load_image(item, self.limits)
        pixels = self.processor(images=image, return_tensors="pt")["pixel_values"]
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
