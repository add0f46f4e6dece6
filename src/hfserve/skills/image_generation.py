"""Text-to-image (Stable Diffusion and every other diffusers text-to-image pipeline): a prompt
in, a PNG out. diffusers' ``AutoPipelineForText2Image`` loads the folder (an image-to-image
or inpainting checkpoint becomes its text-to-image pipeline, sharing the components; a
pipeline that has none is refused). Images of one batch that share a size, a step count and
a guidance scale are denoised together, each from a generator of its own, so a seeded image
is the same whichever others share its batch."""

from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import groupby
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.backends.torch_backend import torch_dtype
from hfserve.errors import InvalidRequest
from hfserve.skills.base import BatchSkill, Prepared
from hfserve.types import Task

INSTALL_HINT = "pip install 'hfserve[images]'"


@dataclass(frozen=True)
class ImageJob:
    """One image to make, validated."""

    prompt: str
    negative_prompt: str | None
    seed: int | None
    width: int | None
    height: int | None
    steps: int | None            # None: the pipeline's own default
    guidance_scale: float | None

    @property
    def shape(self) -> tuple[Any, ...]:
        """What images denoised in one call must share."""
        return (self.width, self.height, self.steps, self.guidance_scale)


@dataclass(frozen=True)
class GenerationLimits:
    """A model's limits on what one request may ask (from its ``ModelConfig``)."""

    max_images: int
    max_pixels: int
    max_steps: int
    default_steps: int | None

    @classmethod
    def of(cls, options: dict[str, Any]) -> GenerationLimits:
        return cls(int(options.get("max_images") or 10),
                   int(options.get("max_image_size") or 1024 * 1024),
                   int(options.get("max_image_steps") or 100),
                   options.get("image_steps_default"))


def job_of(item: dict[str, Any], options: dict[str, Any], limits: GenerationLimits) -> ImageJob:
    """Check one image's request against the model's limits."""
    n = int(options.get("n") or 1)
    if n > limits.max_images:
        raise InvalidRequest(f"n is {n}; this model makes at most {limits.max_images} images "
                             "per request", param="n")
    width, height = options.get("size") or (None, None)     # None: the pipeline's own
    if width is not None and width * height > limits.max_pixels:
        raise InvalidRequest(f"size {width}x{height} has {width * height} pixels; this model "
                             f"makes images of at most {limits.max_pixels}", param="size")
    steps = options.get("num_inference_steps") or limits.default_steps
    if steps is not None and steps > limits.max_steps:
        raise InvalidRequest(f"num_inference_steps is {steps}; this model takes at most "
                             f"{limits.max_steps}", param="num_inference_steps")
    return ImageJob(prompt=item["prompt"], negative_prompt=options.get("negative_prompt"),
                    seed=item.get("seed"), width=width, height=height, steps=steps,
                    guidance_scale=options.get("guidance_scale"))


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def new_generator(seed: int | None) -> Any:
    """A CPU generator (the same noise on every device), seeded, or from fresh entropy."""
    import torch

    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class ImageGenerationSkill(BatchSkill):
    task: ClassVar[Task] = Task.TEXT_TO_IMAGE
    backends: ClassVar[tuple[str, ...]] = ("torch",)

    def load(self, placement: Placement) -> None:
        try:
            from diffusers import AutoPipelineForText2Image
        except ImportError as exc:
            raise ImportError(f"model {self.spec.name!r} is a diffusers pipeline; serving it "
                              f"needs diffusers: {INSTALL_HINT}") from exc
        self.placement = placement
        self.limits = GenerationLimits.of(self.spec.options)
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(
                str(self.spec.path), torch_dtype=torch_dtype(placement.dtype),
                local_files_only=True,
                trust_remote_code=bool(self.spec.options.get("trust_remote_code")),
                use_safetensors=None if self.spec.options.get("allow_pickle") else True)
        except ValueError as exc:     # no text-to-image pipeline for this class
            raise InvalidRequest(f"model {self.spec.name!r} ({self.spec.architecture}) does "
                                 f"not make images from text: {exc}", param="model") from exc
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(placement.device)
        self.tokenizer = getattr(pipe, "tokenizer", None)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "pipeline": type(self.pipe).__name__}

    def unload(self) -> None:
        self.pipe = None

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        job = job_of(item, options, self.limits)
        return Prepared(payload=job, cost=self._prompt_tokens(job.prompt))

    def _prompt_tokens(self, prompt: str) -> int:
        """The prompt's tokens as the text encoder takes them (cut at its limit)."""
        if self.tokenizer is None:
            return 1
        ids = self.tokenizer(prompt, truncation=True)["input_ids"]
        return max(1, len(ids))

    def run_batch(self, items: list[Prepared]) -> list[bytes]:
        jobs = [p.payload for p in items]
        results: list[bytes] = [b""] * len(jobs)
        order = sorted(range(len(jobs)), key=lambda i: repr(jobs[i].shape))
        for _, group in groupby(order, key=lambda i: jobs[i].shape):
            members = list(group)
            for i, image in zip(members, self._denoise([jobs[i] for i in members]),
                                strict=True):
                results[i] = png_bytes(image)
        return results

    def _denoise(self, jobs: list[ImageJob]) -> list[Any]:
        import torch

        first = jobs[0]
        kwargs: dict[str, Any] = {}
        if first.width is not None:
            kwargs.update(width=first.width, height=first.height)
        if first.steps is not None:
            kwargs["num_inference_steps"] = first.steps
        if first.guidance_scale is not None:
            kwargs["guidance_scale"] = first.guidance_scale
        if any(j.negative_prompt for j in jobs):
            kwargs["negative_prompt"] = [j.negative_prompt or "" for j in jobs]
        with torch.inference_mode():
            output = self.pipe(prompt=[j.prompt for j in jobs],
                               generator=[new_generator(j.seed) for j in jobs],
                               output_type="pil", **kwargs)
        return list(output.images)
