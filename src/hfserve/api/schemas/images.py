"""POST /v1/images/generations wire types: OpenAI's image request and response. Images come
back as base64 PNG only (nothing is stored to serve a URL from). ``quality`` and ``style``
take OpenAI's values; those asking for something a diffusion pipeline has no switch for are
refused by name rather than ignored. Fields this server adds (``extra_body``): the
pipeline's own ``negative_prompt``, ``num_inference_steps``, ``guidance_scale`` and
``seed``."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from hfserve.api.schemas.common import ExtraOptions, Text
from hfserve.validation import require_unicode

SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
SIZE_STEP = 8                # latent pixels: diffusers pipelines take multiples of 8
DEFAULT_QUALITY = ("auto", "standard")
MAX_SEED = 2**63 - 1


def dimensions(size: str) -> tuple[int, int] | None:
    """(width, height) of "WxH", None for "auto" (the pipeline's own size)."""
    if size == "auto":
        return None
    match = SIZE.fullmatch(size)
    if match is None:
        raise ValueError(f"size must look like 1024x1024 (width x height) or be auto, got "
                         f"{size!r}")
    width, height = int(match[1]), int(match[2])
    if width < SIZE_STEP or height < SIZE_STEP or width % SIZE_STEP or height % SIZE_STEP:
        raise ValueError(f"size {size}: width and height must be multiples of {SIZE_STEP}")
    return width, height


class ImageGenerationRequest(ExtraOptions):
    model: str
    prompt: Text = Field(description="What the image shows")
    n: int = Field(1, ge=1, le=10, description="Images to make (the model may allow fewer)")
    size: str = Field("auto", description="WIDTHxHEIGHT in multiples of 8, or auto (the "
                      "pipeline's own size)")
    response_format: Literal["b64_json", "url"] = Field(
        "b64_json", description="b64_json only: images are never stored to be fetched")
    output_format: Literal["png", "jpeg", "webp"] = Field("png", description="png only")
    quality: Literal["auto", "standard", "hd", "low", "medium", "high"] = Field(
        "auto", description="auto or standard; for more or fewer steps set "
        "num_inference_steps")
    style: Literal["vivid", "natural"] | None = Field(
        None, description="Refused: describe the style in the prompt")
    user: str | None = None
    negative_prompt: str | None = Field(None, description="What the image must not show")
    num_inference_steps: int | None = Field(None, ge=1, description="Denoising steps")
    guidance_scale: float | None = Field(None, ge=0, description="Classifier-free guidance "
                                         "(1 or less: none)")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Makes the images "
                             "reproducible: image i of the request is seeded with seed + i")

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _unicode(cls, value: str | None, info: Any) -> str | None:
        return value if value is None else require_unicode(value, info.field_name)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        dimensions(value)
        return value

    @field_validator("response_format")
    @classmethod
    def _b64_only(cls, value: str) -> str:
        if value != "b64_json":
            raise ValueError("only b64_json is served: images are returned in the response, "
                             "never stored behind a URL")
        return value

    @field_validator("output_format")
    @classmethod
    def _png_only(cls, value: str) -> str:
        if value != "png":
            raise ValueError("only png is served")
        return value

    @field_validator("quality")
    @classmethod
    def _quality(cls, value: str) -> str:
        if value not in DEFAULT_QUALITY:
            raise ValueError(f"quality {value!r} is not served (auto or standard); set "
                             "num_inference_steps for more or fewer denoising steps")
        return value

    @field_validator("style")
    @classmethod
    def _style(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("style is not served: describe the style in the prompt")
        return value

    def seeds(self) -> list[int | None]:
        """Each image's seed (seed + its index), None for each when no seed is given."""
        if self.seed is None:
            return [None] * self.n
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.n)]

    def options(self) -> dict[str, Any]:
        """What the skill takes, shared by the request's images."""
        return {"n": self.n, "size": dimensions(self.size),
                "negative_prompt": self.negative_prompt,
                "num_inference_steps": self.num_inference_steps,
                "guidance_scale": self.guidance_scale}


class ImageData(BaseModel):
    b64_json: str
    revised_prompt: str | None = None


class ImageGenerationResponse(BaseModel):
    created: int
    data: list[ImageData]
