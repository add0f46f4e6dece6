"""POST /v1/detect and POST /v1/segment wire types. Each input is an image: a data URL,
bare base64, or an http(s) URL on the model's ``image_url_hosts``. Each image's answer is
what transformers' object-detection / image-segmentation pipeline returns for it, in
``data`` beside its index, as the other list routes answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from hfserve.api.schemas.common import ExtraOptions, Text, Usage

Images = Text | Annotated[list[Text], Field(min_length=1)]
IMAGES = "An image (a data URL, base64, or an allowed http(s) URL) or a list of images"


class DetectRequest(ExtraOptions):
    model: str
    input: Images = Field(description=IMAGES)
    threshold: float = Field(0.5, ge=0, le=1,
                             description="Objects scoring above this are returned")
    user: str | None = None


class Box(BaseModel):
    xmin: int
    ymin: int
    xmax: int
    ymax: int


class DetectedObject(BaseModel):
    label: str
    score: float
    box: Box


class Detections(BaseModel):
    index: int
    objects: list[DetectedObject]


class DetectResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[Detections]
    usage: Usage


class SegmentRequest(ExtraOptions):
    model: str
    input: Images = Field(description=IMAGES)
    subtask: Literal["panoptic", "instance", "semantic"] | None = Field(
        None, description="Post-processing (default: the first of these the model offers)")
    threshold: float = Field(0.9, ge=0, le=1, description="Panoptic/instance: segments "
                             "scoring above this are returned")
    mask_threshold: float = Field(0.5, ge=0, le=1, description="Panoptic/instance: the "
                                  "mask probability a pixel needs to be in its segment")
    overlap_mask_area_threshold: float = Field(0.5, ge=0, le=1, description="Panoptic/"
                                               "instance: how much of a mask must be its own")
    user: str | None = None


class Segment(BaseModel):
    label: str
    score: float | None = Field(description="None for semantic segmentation")
    mask: str = Field(description="PNG (8-bit grey: 255 in the segment, 0 outside), base64")


class Segments(BaseModel):
    index: int
    segments: list[Segment]


class SegmentResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[Segments]
    usage: Usage
