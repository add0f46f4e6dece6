"""Image segmentation (SegFormer, DPT, BEiT semantic heads; MaskFormer, Mask2Former, DETR
panoptic and instance heads): one image in, one mask per segment out, as transformers'
image-segmentation pipeline answers: panoptic, else instance, else semantic
post-processing, whichever the image processor offers first (or the one ``subtask`` names),
on the image's own size. Each mask is a PNG (8-bit grey, 255 inside the segment, 0 outside)
in base64, as the HuggingFace Inference API sends it."""

from __future__ import annotations

import base64
import io
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.errors import InvalidRequest
from hfserve.skills.base import Prepared
from hfserve.skills.image_processing import ImageSkill
from hfserve.skills.object_detection import threshold_of
from hfserve.types import Task

# transformers' auto classes for segmentation heads, with the mapping that lists their
# architectures: the model loads with the first whose mapping holds it.
AUTO_CLASSES = (
    ("AutoModelForSemanticSegmentation", "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES"),
    ("AutoModelForUniversalSegmentation", "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES"),
    ("AutoModelForInstanceSegmentation", "MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES"),
    ("AutoModelForImageSegmentation", "MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES"),
)
SUBTASKS = ("panoptic", "instance", "semantic")
# The pipeline's defaults.
DEFAULTS = {"threshold": 0.9, "mask_threshold": 0.5, "overlap_mask_area_threshold": 0.5}


def auto_class(architecture: str) -> Any:
    import transformers
    from transformers.models.auto import modeling_auto

    for name, mapping in AUTO_CLASSES:
        if architecture in getattr(modeling_auto, mapping, {}).values():
            return getattr(transformers, name)
    return transformers.AutoModelForSemanticSegmentation


def png_base64(mask: Any) -> str:
    """A boolean (height, width) array as a base64 PNG: 255 inside, 0 outside."""
    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray((mask * 255).astype(np.uint8)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


class ImageSegmentationSkill(ImageSkill):
    task: ClassVar[Task] = Task.IMAGE_SEGMENTATION

    def auto_class(self) -> Any:
        return auto_class(self.spec.architecture)

    def load(self, placement: Placement) -> None:
        super().load(placement)
        self.subtasks = tuple(s for s in SUBTASKS
                              if hasattr(self.processor, f"post_process_{s}_segmentation"))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "subtasks": list(self.subtasks)}

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        subtask = options.get("subtask") or self.subtasks[0]
        if subtask not in self.subtasks:
            raise InvalidRequest(f"subtask must be one of {', '.join(self.subtasks)} for this "
                                 "model", param="subtask")
        settings = {name: threshold_of(options, name, default)
                    for name, default in DEFAULTS.items()}
        return self.prepared(item, subtask, settings)

    def answer(self, output: Any, size: tuple[int, int], subtask: str,
               settings: dict[str, float]) -> list[dict[str, Any]]:
        import numpy as np

        post = getattr(self.processor, f"post_process_{subtask}_segmentation")
        if subtask == "semantic":
            segmentation = post(output, target_sizes=[size])[0].cpu().numpy()
            return [{"score": None, "label": self.labels[int(label)],
                     "mask": png_base64(segmentation == label)}
                    for label in np.unique(segmentation)]
        found = post(output, target_sizes=[size], **settings)[0]
        segmentation = found["segmentation"].cpu().numpy()
        return [{"score": float(segment["score"]), "label": self.labels[segment["label_id"]],
                 "mask": png_base64(segmentation == segment["id"])}
                for segment in found["segments_info"]]
