"""POST /v1/images/generations in-process: the request schema's checks (OpenAI's fields and
the ones refused by name), and the route and the skill's batching around a fake denoiser
(each image a flat colour made from its seed) registered for the text-to-image task."""

from __future__ import annotations

import base64
import io
import json
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from hfserve.api.schemas.images import ImageGenerationRequest, dimensions
from hfserve.backends.placement import Placement
from hfserve.registry import skills as skill_table
from hfserve.skills.image_generation import GenerationLimits, ImageGenerationSkill, ImageJob
from hfserve.types import Task

INDEX = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.39.0",
         "unet": ["diffusers", "UNet2DConditionModel"]}


class FakeImageSkill(ImageGenerationSkill):
    """The real skill's checks and batching; a flat colour per seed in place of denoising."""

    calls: ClassVar[list[list[ImageJob]]] = []

    def load(self, placement: Placement) -> None:
        self.placement = placement
        self.limits = GenerationLimits.of(self.spec.options)
        self.tokenizer = None
        self.pipe = self

    def _denoise(self, jobs: list[ImageJob]) -> list[Any]:
        from PIL import Image

        self.calls.append(jobs)
        return [Image.new("RGB", (j.width or 8, j.height or 8),
                          ((j.seed or 0) % 256, 0, 0)) for j in jobs]


@pytest.fixture
def images_model(tmp_path):
    folder = tmp_path / "sd"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps(INDEX))
    saved = dict(skill_table.SKILLS)
    skill_table.SKILLS[Task.TEXT_TO_IMAGE] = (f"{__name__}:FakeImageSkill",)
    FakeImageSkill.calls.clear()
    yield folder
    skill_table.SKILLS.clear()
    skill_table.SKILLS.update(saved)


def request(**fields: Any) -> ImageGenerationRequest:
    return ImageGenerationRequest.model_validate({"model": "sd", "prompt": "a cat", **fields})


def test_defaults_are_openais():
    body = request()
    assert (body.n, body.size, body.response_format, body.quality) == (1, "auto", "b64_json",
                                                                      "auto")
    assert body.options()["size"] is None and body.seeds() == [None]


def test_sizes_are_width_by_height_in_multiples_of_8():
    assert dimensions("32x24") == (32, 24)
    assert dimensions("auto") is None
    for bad in ("30x30", "0x0", "32", "32x24x8", "-8x8", "axb"):
        with pytest.raises(ValueError):
            dimensions(bad)


def test_each_image_gets_seed_plus_its_index():
    assert request(n=3, seed=5).seeds() == [5, 6, 7]
    assert request(n=2, seed=2**63 - 1).seeds() == [2**63 - 1, 0]


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 0}, "n"), ({"n": 11}, "n"), ({"size": "30x30"}, "size"),
    ({"response_format": "url"}, "response_format"), ({"response_format": "gif"},
                                                       "response_format"),
    ({"output_format": "jpeg"}, "output_format"), ({"quality": "hd"}, "quality"),
    ({"quality": "best"}, "quality"), ({"style": "vivid"}, "style"),
    ({"num_inference_steps": 0}, "num_inference_steps"), ({"guidance_scale": -1.0},
                                                         "guidance_scale"),
    ({"seed": -1}, "seed"), ({"prompt": ""}, "prompt"), ({"prompt": "\ud800"}, "prompt"),
    ({"background": "transparent"}, "background"),
])
def test_bad_fields_are_refused(fields, param):
    with pytest.raises(ValidationError) as caught:
        request(**fields)
    assert caught.value.errors()[0]["loc"][0] == param


def test_limits_are_the_models():
    limits = GenerationLimits(max_images=2, max_pixels=64 * 64, max_steps=4, default_steps=3)
    skill = FakeImageSkill.__new__(FakeImageSkill)
    skill.limits, skill.tokenizer = limits, None
    item = {"prompt": "a cat", "seed": None}
    job = skill.prepare(item, {"n": 2, "size": (64, 64)}).payload
    assert (job.width, job.height, job.steps) == (64, 64, 3)
    for options, param in (({"n": 3}, "n"), ({"size": (72, 64)}, "size"),
                           ({"num_inference_steps": 5}, "num_inference_steps")):
        with pytest.raises(Exception) as caught:
            skill.prepare(item, {"size": (8, 8), **options})
        assert caught.value.param == param and caught.value.status == 400


async def test_route_answers_pngs_batched_by_shape(start, images_model):
    async with start(models=[{"source": str(images_model), "name": "sd"}]) as server:
        await server.wait_ready()
        response = await server.client.post("/v1/images/generations", json={
            "model": "sd", "prompt": "a cat", "n": 3, "size": "16x8", "seed": 10,
            "num_inference_steps": 2})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"created", "data"}
        from PIL import Image

        shown = [Image.open(io.BytesIO(base64.b64decode(d["b64_json"]))) for d in body["data"]]
        assert [(im.format, im.size) for im in shown] == [("PNG", (16, 8))] * 3
        assert [im.convert("RGB").getpixel((0, 0))[0] for im in shown] == [10, 11, 12]
        assert all(d["revised_prompt"] is None for d in body["data"])
        assert [len(call) for call in FakeImageSkill.calls] == [3]    # one denoising call
        # No seed: never answered from the cache, each request runs.
        for _ in range(2):
            unseeded = await server.client.post("/v1/images/generations", json={
                "model": "sd", "prompt": "a dog", "size": "8x8"})
            assert unseeded.status_code == 200
        assert len(FakeImageSkill.calls) == 3
        refused = await server.client.post("/v1/images/generations", json={
            "model": "sd", "prompt": "a cat", "response_format": "url"})
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["param"] == "response_format" and "only b64_json" in error["message"]


async def test_a_model_that_makes_no_images_is_a_400(server):
    response = await server.client.post("/v1/images/generations",
                                        json={"model": "emb", "prompt": "a cat"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_task"
