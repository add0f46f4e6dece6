"""What every image skill shares: the folder's image processor (its PIL/numpy class, which
needs no torchvision), an image's share of the batch budget, one forward per group of
same-sized images (so that a batch gives each image what a run of it alone gives), and the
loading of a torch image model (``ImageSkill``)."""

from __future__ import annotations

import importlib
import json
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.backends.torch_backend import load_torch_model
from hfserve.media.images import ImageLimits, load_image
from hfserve.skills.base import BatchSkill, Prepared


def _pil_class(name: str) -> Any:
    """transformers' class ``name``, imported from its own module where the package only
    offers a placeholder: transformers 5.5 marks some PIL processors (SegFormer's) as needing
    torchvision, which only their segmentation-map resizing uses, never inference."""
    import transformers
    from transformers.models.auto.configuration_auto import model_type_to_module_name
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
    from transformers.utils.import_utils import DummyObject

    cls = getattr(transformers, name, None)
    if cls is None or not isinstance(cls, DummyObject):
        return cls
    for model_type, names in IMAGE_PROCESSOR_MAPPING_NAMES.items():
        if name in names.values():
            module = model_type_to_module_name(model_type)
            return getattr(importlib.import_module(
                f"transformers.models.{module}.image_processing_pil_{module}"), name)
    return cls


def image_processor(spec: Any) -> Any:
    """The folder's image processor, its PIL/numpy class (``...ImageProcessorPil``): the
    default ones, and ``AutoImageProcessor`` itself, need torchvision. Older folders name
    only a ``...FeatureExtractor``, the same class under its former name."""
    saved = json.loads((spec.path / "preprocessor_config.json").read_text())
    name = str(saved.get("image_processor_type") or str(
        saved.get("feature_extractor_type", "")).replace("FeatureExtractor", "ImageProcessor"))
    name = name.removesuffix("Fast").removesuffix("Pil")
    cls = _pil_class(name + "Pil") or _pil_class(name)
    # a class of transformers' own: no code of the folder's runs, whatever the setting
    return cls.from_pretrained(str(spec.path), trust_remote_code=False)


def pixel_cost(pixel_values: Any) -> int:
    """An image's share of the batch budget: its 16x16 patches, as a ViT counts tokens."""
    return max(1, int(pixel_values.shape[-1]) * int(pixel_values.shape[-2]) // 256)


def by_shape(features: list[dict[str, Any]], forward: Callable[..., Any], device: str,
             dtype: Any) -> list[Any]:
    """``forward(**batch)`` once per group of items whose tensors have the same shapes,
    stacked and moved to ``device`` (floating ones in ``dtype``); returns each item's own
    output (a batch of one, as ``forward`` gave it).
    Images of different sizes are never padded together: padding would change what a
    convolutional backbone sees at the borders."""
    import torch

    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(features):
        groups.setdefault(tuple((k, tuple(v.shape)) for k, v in sorted(item.items())),
                          []).append(i)
    out: list[Any] = [None] * len(features)
    for members in groups.values():
        batch = {k: torch.cat([features[i][k] for i in members]).to(device)
                 for k in features[members[0]]}
        batch = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
        with torch.inference_mode():
            result = forward(**batch)
        for row, i in enumerate(members):
            out[i] = row_of(result, row)
    return out


def row_of(output: Any, row: int) -> Any:
    """Row ``row`` of a batched model output (a tensor, or transformers' ``ModelOutput``) as
    a batch of one: what the image processors' ``post_process_*`` methods take."""
    import torch

    if isinstance(output, torch.Tensor):
        return output[row:row + 1]
    return type(output)(**{k: v[row:row + 1] if isinstance(v, torch.Tensor) else v
                           for k, v in output.items()})


class ImageSkill(BatchSkill):
    """A torch image model: its image processor, weights, image limits and labels loaded
    alike; each skill names its auto class and runs its own head."""

    backends: ClassVar[tuple[str, ...]] = ("torch",)

    @abstractmethod
    def auto_class(self) -> Any:
        """The transformers auto class (or model class) the weights load with."""

    def load(self, placement: Placement) -> None:
        self.placement = placement
        self.processor = image_processor(self.spec)
        self.model = load_torch_model(self.auto_class(), self.spec, placement)
        self.limits = ImageLimits.of(self.spec.options)
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "labels": self.labels}

    def unload(self) -> None:
        self.model = None

    def features(self, item: Any) -> tuple[dict[str, Any], tuple[int, int]]:
        """An input decoded (within the model's limits) and processed as the pipelines do
        it: the processor's tensors (a batch of one) and the image's (height, width)."""
        image = load_image(item, self.limits)
        return dict(self.processor(images=[image], return_tensors="pt")), (image.height,
                                                                            image.width)

    def prepared(self, item: Any, *settings: Any) -> Prepared:
        """An input's features and size, with the request's ``settings`` for ``answer``."""
        features, size = self.features(item)
        return Prepared(payload=(features, size, *settings),
                        cost=pixel_cost(features["pixel_values"]))

    def run_batch(self, items: list[Prepared]) -> list[Any]:
        outputs = by_shape([p.payload[0] for p in items], self.model, self.placement.device,
                           self.model.dtype)
        return [self.answer(output, *p.payload[1:])
                for output, p in zip(outputs, items, strict=True)]

    def answer(self, output: Any, size: tuple[int, int], *settings: Any) -> Any:
        """One image's result from its model output (a batch of one) and its size."""
        raise NotImplementedError(f"{type(self).__name__} runs batches of its own")
