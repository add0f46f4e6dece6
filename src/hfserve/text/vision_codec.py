"""Chat messages with images -> token ids and pixel values, for vision-language models
(LLaVA-style), through the model's own processor: its chat template places an image token
where each image goes, its image processor resizes and normalises the images, and it
expands each image token to the number of features the vision tower gives an image.

Images come as OpenAI ``image_url`` parts and are decoded within the model's limits by
``hfserve.media.images`` (data URLs and base64 always; http(s) only from the model's
``image_url_hosts``), as every image route does. All of it runs where prompts are encoded,
off the event loop."""

from __future__ import annotations

import copy
import threading
from typing import Any

from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.errors import InvalidRequest
from hfserve.media.images import ImageLimits, load_image
from hfserve.text.codec import HFTextCodec, token_ids
from hfserve.types import ModelSpec


def _load_processor(spec: ModelSpec) -> Any:
    """The folder's processor with its PIL/numpy image processor where it has one: the
    default (torchvision) ones do not import beside this torch, and the PIL ones give the
    same pixels everywhere."""
    from transformers import AutoProcessor

    kwargs = tokenizer_kwargs(spec)
    try:
        return AutoProcessor.from_pretrained(str(spec.path), backend="pil", **kwargs)
    except (TypeError, ValueError, ImportError):
        return AutoProcessor.from_pretrained(str(spec.path), **kwargs)


def _as_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every content as a list of parts: vision-language templates (llava-hf's) iterate
    over a message's parts and render nothing of a plain string (vLLM's "openai" content
    format)."""
    out = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            content = [{"type": "text", "text": content}] if content else []
        out.append({**message, "content": content})
    return out


class VisionChatCodec(HFTextCodec):
    """The text side of a vision-language model: ``HFTextCodec`` over the processor's
    tokenizer, and chats whose images become the model's ``pixel_values``."""

    processor: Any
    limits: ImageLimits

    @classmethod
    def text_codec(cls) -> VisionChatCodec:
        return VisionChatCodec()

    def load_tokenizer(self, spec: ModelSpec, eos_from_model: Any = None,
                       cache_dir: Any = None) -> frozenset[int]:
        self.processor = _load_processor(spec)
        tokenizer = self.processor.tokenizer
        # transformers keeps a processor's template on the processor (chat_template.jinja).
        template = getattr(self.processor, "chat_template", None)
        if template and not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = template
        self.image_token = str(self.processor.image_token)
        self.limits = ImageLimits.of(spec.options)
        self._local = threading.local()
        return self.use_tokenizer(tokenizer, spec, eos_from_model)

    def encode_chat(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> list[int]:
        return self.encode_chat_inputs(messages, options)[0]

    def encode_chat_inputs(self, messages: list[dict[str, Any]], options: dict[str, Any]
                           ) -> tuple[list[int], dict[str, Any] | None]:
        images: list[Any] = []
        shaped = [self._with_images(m, images) for m in messages]
        text = self.render_messages(shaped, options, _as_parts)
        placed = text.count(self.image_token)
        if placed != len(images):
            # A text holding the image token itself, or a template that drops images.
            raise InvalidRequest(f"the prompt has {placed} image tokens for {len(images)} "
                                 f"images; text may not contain {self.image_token!r}",
                                 param="messages")
        # As transformers' processor: special tokens are added unless the template
        # begins with the beginning-of-sequence token itself.
        bos = self.tokenizer.bos_token
        special = not (bos and text.startswith(bos))
        if not images:
            return token_ids(self.tokenizer, text, special=special), None
        out = self._thread_processor()(images=images, text=text, add_special_tokens=special,
                                       return_tensors="np")
        text_inputs = set(self.tokenizer.model_input_names)
        media = {k: v for k, v in out.items() if k not in text_inputs}
        return [int(t) for t in out["input_ids"][0]], media

    def _thread_processor(self) -> Any:
        """A copy of the processor for the calling thread. Its tokenizer call sets the Rust
        tokenizer's truncation and padding, which is state: prompts encoded at once on two
        threads of the prepare pool failed with "Already borrowed"."""
        processor = getattr(self._local, "processor", None)
        if processor is None:
            processor = self._local.processor = copy.deepcopy(self.processor)
        return processor

    def _with_images(self, message: dict[str, Any], images: list[Any]) -> dict[str, Any]:
        """``message`` with each ``image_url`` part decoded into ``images`` and left as an
        ``image`` part for the template; a message without images has its text joined."""
        content = message.get("content")
        if not isinstance(content, list):
            return message
        parts: list[dict[str, Any]] = []
        for part in content:
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": part.get("text", "")})
            elif kind == "image_url":
                images.append(load_image(part, self.limits, param="messages"))
                parts.append({"type": "image"})
            else:
                raise InvalidRequest(f"this model accepts text and image content, got "
                                     f"{kind!r}", param="messages")
        if all(p["type"] == "text" for p in parts):
            return {**message, "content": "".join(p["text"] for p in parts)}
        return {**message, "content": parts}
