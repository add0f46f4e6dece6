"""Object detection (DETR, Deformable DETR, YOLOS, RT-DETR...): one image in, the objects
found above a score threshold out, each with its label, score and pixel box, as
transformers' object-detection pipeline answers (the image processor's
``post_process_object_detection`` on the image's own size). Images are decoded and resized in
``prepare``, off the event loop; images of one size share a forward pass."""

from __future__ import annotations

from typing import Any, ClassVar

from hfserve.errors import InvalidRequest
from hfserve.skills.base import Prepared
from hfserve.skills.image_processing import ImageSkill
from hfserve.types import Task

DEFAULT_THRESHOLD = 0.5      # the pipeline's


def threshold_of(options: dict[str, Any], name: str, default: float) -> float:
    """A score threshold option: a number from 0 to 1, ``default`` where unset."""
    value = options.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidRequest(f"{name} must be a number from 0 to 1", param=name)
    return float(value)


class ObjectDetectionSkill(ImageSkill):
    task: ClassVar[Task] = Task.OBJECT_DETECTION

    def auto_class(self) -> Any:
        from transformers import AutoModelForObjectDetection

        return AutoModelForObjectDetection

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        return self.prepared(item, threshold_of(options, "threshold", DEFAULT_THRESHOLD))

    def answer(self, output: Any, size: tuple[int, int], threshold: float
               ) -> list[dict[str, Any]]:
        """The pipeline's answer for one image: ``{score, label, box}`` per object, the box
        in whole pixels of the image as sent."""
        import torch

        found = self.processor.post_process_object_detection(
            output, threshold, torch.tensor([size], dtype=torch.int32))[0]
        return [{"score": float(score), "label": self.labels[int(label)],
                 "box": dict(zip(("xmin", "ymin", "xmax", "ymax"),
                                 box.int().tolist(), strict=True))}
                for score, label, box in zip(found["scores"], found["labels"],
                                             found["boxes"], strict=True)]
