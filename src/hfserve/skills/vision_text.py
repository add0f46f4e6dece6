"""CLIP-style models (CLIP, SigLIP...): texts and images embedded in one space, and
images classified zero-shot against any labels. Embeddings are the model's projected
features (``get_text_features`` / ``get_image_features``), L2-normalised, as Infinity and
sentence-transformers' CLIP models give them; the modality option says what the inputs are.
Zero-shot answers as transformers' zero-shot-image-classification pipeline does: each label
put in the hypothesis template, the image's similarity to each (the model's logit scale and
bias), softmax over the labels (sigmoid for SigLIP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.backends.torch_backend import load_torch_model
from hfserve.errors import InvalidRequest
from hfserve.media.images import ImageLimits, load_image
from hfserve.skills.base import BatchSkill, Prepared, input_limit
from hfserve.skills.classification import Scores, candidate_labels, hypothesis_template
from hfserve.skills.image_processing import by_shape, image_processor, pixel_cost
from hfserve.text.codec import fit_length, token_ids
from hfserve.text.pooling import shorten
from hfserve.types import Task

MODALITIES = ("text", "image")
TEXT_INPUTS = ("input_ids", "attention_mask")     # what ``get_text_features`` takes


@dataclass
class TextInput:
    ids: list[int]
    dimensions: int | None


@dataclass
class ImageInput:
    pixels: Any
    dimensions: int | None


@dataclass
class ZeroShotImage:
    """One image to classify against ``labels``; ``text``: their hypotheses, tokenized."""

    pixels: Any
    labels: list[str]
    text: dict[str, Any]


class VisionTextSkill(BatchSkill):
    task: ClassVar[Task] = Task.ZERO_SHOT_IMAGE
    also_serves: ClassVar[tuple[Task, ...]] = (Task.EMBEDDING,)
    backends: ClassVar[tuple[str, ...]] = ("torch",)

    def load(self, placement: Placement) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.placement = placement
        self.processor = image_processor(self.spec)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.spec.path),
                                                       **tokenizer_kwargs(self.spec))
        self.model = load_torch_model(AutoModel, self.spec, placement)
        self.limits = ImageLimits.of(self.spec.options)
        config = self.model.config
        self.siglip = "siglip" in config.model_type
        self.max_length = input_limit(
            getattr(config.text_config, "max_position_embeddings", None),
            getattr(self.tokenizer, "model_max_length", None))
        self.dimensions = int(getattr(config, "projection_dim", 0) or 0)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "max_input_length": self.max_length,
                "dimensions": self.dimensions, "modalities": list(MODALITIES)}

    def unload(self) -> None:
        self.model = None

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        """An image with ``candidate_labels`` in ``options``: classified zero-shot; else an
        input to embed, a text or (``modality`` "image") an image."""
        if options.get("candidate_labels") is not None:
            return self._prepare_zero_shot(item, options)
        if options.get("pooling") == "none":
            raise InvalidRequest("a CLIP-style model gives one vector per input, not one per "
                                 "token", param="model", code="unsupported_task")
        modality = options.get("modality") or "text"
        if modality not in MODALITIES:
            raise InvalidRequest("modality must be text or image", param="modality")
        dimensions = options.get("dimensions")
        if modality == "image":
            pixels = self._pixels(item)
            return Prepared(payload=ImageInput(pixels, dimensions), cost=pixel_cost(pixels))
        if not isinstance(item, str) or not item:
            raise InvalidRequest("each input must be a non-empty text (with modality image, "
                                 "an image)", param="input")
        ids = fit_length(token_ids(self.tokenizer, item), self.max_length,
                         bool(options.get("truncate")))
        return Prepared(payload=TextInput(ids, dimensions), cost=len(ids))

    def _pixels(self, item: Any) -> Any:
        image = load_image(item, self.limits)
        return self.processor(images=[image], return_tensors="pt")["pixel_values"]

    def _prepare_zero_shot(self, item: Any, options: dict[str, Any]) -> Prepared:
        labels = candidate_labels(options)
        template = hypothesis_template(options, "This is a photo of {}.")
        pixels = self._pixels(item)
        # the pipeline's tokenizer settings (SigLIP was trained on 64 padded tokens)
        settings = {"padding": "max_length", "max_length": 64, "truncation": True} \
            if self.siglip else {"padding": True}
        encoded = self.tokenizer([template.format(label) for label in labels],
                                 return_tensors="pt", **settings)
        text = {k: v for k, v in encoded.items() if k in TEXT_INPUTS}
        if int(text["input_ids"].shape[1]) > self.max_length:
            raise InvalidRequest(f"a hypothesis is longer than this model's maximum of "
                                 f"{self.max_length} tokens", param="candidate_labels")
        return Prepared(payload=ZeroShotImage(pixels, labels, text),
                        cost=pixel_cost(pixels) + int(text["input_ids"].numel()))

    def run_batch(self, items: list[Prepared]) -> list[Any]:
        import torch

        payloads = [p.payload for p in items]
        device, dtype = self.placement.device, self.model.dtype
        with_images = [i for i, p in enumerate(payloads) if not isinstance(p, TextInput)]
        # each input's normalised vector (a row of one): its image's, or its text's
        vectors = dict(zip(with_images, by_shape(
            [{"pixel_values": payloads[i].pixels} for i in with_images],
            lambda **batch: self._normalized(self.model.get_image_features(**batch)),
            device, dtype), strict=True))
        texts = [i for i, p in enumerate(payloads) if isinstance(p, TextInput)]
        if texts:
            batch = self.tokenizer.pad({"input_ids": [payloads[i].ids for i in texts]},
                                       return_tensors="pt")
            with torch.inference_mode():
                rows = self._normalized(self.model.get_text_features(
                    **{k: v.to(device) for k, v in batch.items() if k in TEXT_INPUTS}))
            vectors.update(zip(texts, rows.split(1), strict=True))
        return [self._zero_shot(p, vectors[i]) if isinstance(p, ZeroShotImage)
                else shorten(vectors[i][0].float().cpu().numpy(), p.dimensions, True)
                for i, p in enumerate(payloads)]

    @staticmethod
    def _normalized(features: Any) -> Any:
        import torch

        return torch.nn.functional.normalize(features.pooler_output, p=2, dim=-1)

    def _zero_shot(self, item: ZeroShotImage, image: Any) -> Scores:
        """Each label's score, in the request's order (the pipeline ranks them)."""
        import torch

        with torch.inference_mode():
            text = self._normalized(self.model.get_text_features(
                **{k: v.to(self.placement.device) for k, v in item.text.items()}))
            logits = (image @ text.t()) * self.model.logit_scale.exp()
            bias = getattr(self.model, "logit_bias", None)
            if bias is not None:
                logits = logits + bias
        logits = logits[0].float().cpu()
        scores = torch.sigmoid(logits) if self.siglip else torch.softmax(logits, dim=-1)
        return Scores(item.labels, scores.tolist(), logits.tolist())
