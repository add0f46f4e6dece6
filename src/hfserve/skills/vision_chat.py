"""Vision-language chat (LLaVA-style: a vision tower whose image features fill the image
tokens of a language model's prompt) through the torch generation skill, so that it
streams and batches with every other request of the model.

How it batches: a prompt's images become ``pixel_values`` where the prompt is encoded
(``text/vision_codec.py``, off the event loop). The prefill runs the whole model, images
and all, on the prompts admitted together (left-padded; their images' rows concatenated in
prompt order), which merges the image features into the embeddings and fills the KV cache;
from then on a sequence is text, and its decode steps run in the same continuous batch as
text-only ones. A prompt with images is prefilled whole (never in parts) and eagerly
(never at the fixed shapes of captured prefill graphs)."""

from __future__ import annotations

from typing import ClassVar

from hfserve.skills.generation import GenerationSkill
from hfserve.text.vision_codec import VisionChatCodec
from hfserve.types import Task


class VisionChatSkill(VisionChatCodec, GenerationSkill):
    task: ClassVar[Task] = Task.IMAGE_TEXT_TO_TEXT
    also_serves: ClassVar[tuple[Task, ...]] = (Task.TEXT_GENERATION,)
    auto_class: ClassVar[str] = "AutoModelForImageTextToText"
