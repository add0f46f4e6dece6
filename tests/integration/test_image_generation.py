"""Text-to-image on a tiny random Stable Diffusion pipeline built here (UNet, VAE, CLIP text
encoder with a tiny BPE vocabulary, DDIM scheduler), served over HTTP and called with the
openai SDK's ``client.images.generate``: PNGs of the asked size, a seeded image equal to the
pipeline's own output in this process, and bad requests refused with 400s after which the
server still answers."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import openai
import pytest

from .conftest import serve_folders

PROMPT = "a red cat"
SIZE = "32x24"                    # width x height, not square: the order is checked
STEPS = 2


def tiny_stable_diffusion(folder):
    """A random Stable Diffusion pipeline small enough to denoise in a second on a CPU."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    # CLIP's BPE needs a vocabulary and merges: single letters (word-final ones marked
    # </w>) and no merges cut any lowercase text.
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in letters + [c + "</w>" for c in letters]:
        vocab[token] = len(vocab)
    words = folder / "bpe"
    words.mkdir(parents=True)
    (words / "vocab.json").write_text(json.dumps(vocab))
    (words / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(words / "vocab.json"), str(words / "merges.txt"),
                              model_max_length=16)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        max_position_embeddings=16))
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=2)
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        norm_num_groups=2)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def pixels(b64: str) -> np.ndarray:
    from PIL import Image

    data = base64.b64decode(b64)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory):
    return tiny_stable_diffusion(tmp_path_factory.mktemp("diffusion"))


@pytest.fixture(scope="module")
def client(pipeline_folder, tmp_path_factory):
    for url in serve_folders({"sd": pipeline_folder}, tmp_path_factory.mktemp("diffusion-server"),
                             max_image_size=64 * 64, max_image_steps=4,
                             image_steps_default=STEPS):
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_model_is_listed_as_text_to_image(client):
    card = client.models.retrieve("sd")
    assert card.model_extra["task"] == "text-to-image"


def test_two_pngs_of_the_asked_size(client):
    result = client.images.generate(model="sd", prompt=PROMPT, n=2, size=SIZE)
    assert len(result.data) == 2
    images = [pixels(d.b64_json) for d in result.data]
    assert all(image.shape == (24, 32, 3) for image in images)   # rows = height
    assert all(d.revised_prompt is None for d in result.data)
    assert result.created > 0
    # No seed: each image starts from noise of its own.
    assert not np.array_equal(images[0], images[1])


def test_seeded_image_is_the_pipelines_own(client, pipeline_folder):
    import torch
    from diffusers import StableDiffusionPipeline

    extra = {"seed": 1234, "num_inference_steps": 3, "guidance_scale": 4.0,
             "negative_prompt": "blue"}
    served = client.images.generate(model="sd", prompt=PROMPT, size=SIZE, extra_body=extra)
    again = client.images.generate(model="sd", prompt=PROMPT, size=SIZE, extra_body=extra,
                                   extra_headers={"Cache-Control": "no-cache"})
    pipe = StableDiffusionPipeline.from_pretrained(str(pipeline_folder))
    pipe.set_progress_bar_config(disable=True)
    own = pipe(prompt=[PROMPT], negative_prompt=["blue"], width=32, height=24,
               num_inference_steps=3, guidance_scale=4.0,
               generator=[torch.Generator().manual_seed(1234)], output_type="pil").images[0]
    expected = np.asarray(own.convert("RGB"), dtype=np.int16)
    first, second = pixels(served.data[0].b64_json), pixels(again.data[0].b64_json)
    assert np.array_equal(first, second)            # the same seed, computed twice
    # Within 1/255 of the pipeline run here (identical on the machine this was written on;
    # another process with other threads may sum floats in another order, and the PNG
    # holds 8-bit pixels).
    assert int(np.abs(first - expected).max()) <= 1
    other = client.images.generate(model="sd", prompt=PROMPT, size=SIZE,
                                   extra_body={**extra, "seed": 4321})
    assert not np.array_equal(pixels(other.data[0].b64_json), first)


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"size": "30x30"}, "size"),                         # not multiples of 8
    ({"size": "big"}, "size"),
    ({"size": "128x128"}, "size"),                       # more pixels than the model allows
    ({"n": 0}, "n"),
    ({"n": 11}, "n"),
    ({"response_format": "url"}, "response_format"),
    ({"quality": "hd"}, "quality"),
    ({"style": "vivid"}, "style"),
    ({"extra_body": {"num_inference_steps": 50}}, "num_inference_steps"),
    ({"extra_body": {"seed": -1}}, "seed"),
])
def test_bad_requests_are_400s_and_the_server_still_answers(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="sd", prompt=PROMPT, **{"size": SIZE, **kwargs})
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"]
    if kwargs.get("response_format") == "url":
        assert "only b64_json" in error["message"]
    after = client.images.generate(model="sd", prompt=PROMPT, size="16x16")
    assert pixels(after.data[0].b64_json).shape == (16, 16, 3)


def test_a_text_to_image_model_refuses_chat(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="sd", messages=[{"role": "user", "content": "hi"}])
