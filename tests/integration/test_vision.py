"""Image classification on a tiny random ViT built here (its slow image processor saved
beside it), served over HTTP: /v1/classify and /v1/infer answer as transformers'
``pipeline("image-classification")`` does on the same folder, and bad media (a truncated
PNG, a 20000x20000 header, a URL off the allowlist, a file:// URL) is a clear 400 after
which the server still answers."""

from __future__ import annotations

import base64

import httpx
import pytest

from .conftest import serve_folders
from .images import data_url, decoded, huge_png_header, pipe, png_bytes, truncated

LABELS = ["cat", "dog", "bird"]


def tiny_vit(folder):
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                       label2id={name: i for i, name in enumerate(LABELS)})
    ViTForImageClassification(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    return {"vit": tiny_vit(root / "vit")}


@pytest.fixture(scope="module")
def base(models, tmp_path_factory):
    yield from serve_folders(models, tmp_path_factory.mktemp("vision-server"),
                             max_image_pixels=1_000_000, image_url_hosts=["images.example.org"])


IMAGES = [png_bytes(1), png_bytes(2, size=57), png_bytes(3, size=20)]


def images():
    return decoded(IMAGES)


def test_classify_images_as_the_pipeline_does(base, models):
    expected = pipe(models["vit"], "image-classification")(images(), top_k=len(LABELS))
    reply = httpx.post(f"{base}/v1/classify", json={
        "model": "vit", "input": [data_url(b) for b in IMAGES]}, timeout=60)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert len(data) == len(IMAGES)
    for row, want in zip(data, expected, strict=True):
        assert row["label"] == want[0]["label"]
        assert row["num_classes"] == len(LABELS)
        by_label = dict(zip(LABELS, row["probs"], strict=True))
        for entry in want:
            assert by_label[entry["label"]] == pytest.approx(entry["score"], abs=1e-4)


def test_infer_answers_the_pipeline_json(base, models):
    expected = pipe(models["vit"], "image-classification")(images()[0], top_k=2)
    bare = base64.b64encode(IMAGES[0]).decode()      # bare base64, no data: prefix
    reply = httpx.post(f"{base}/v1/infer/vit", json={"inputs": bare,
                                                     "parameters": {"top_k": 2}}, timeout=60)
    assert reply.status_code == 200, reply.text
    got = reply.json()
    assert [r["label"] for r in got] == [r["label"] for r in expected]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected],
                                                      abs=1e-4)


BAD = {
    "truncated": (truncated(IMAGES[0]), "truncated"),
    "huge": (data_url(huge_png_header()), "more pixels"),
    "url": ("https://elsewhere.example.com/cat.png", "not allowed"),
    "file": ("file:///etc/passwd", "file"),
    "path": ("/etc/passwd", "base64"),
    "text": (base64.b64encode(b"not an image at all").decode(), "not an image"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_media_is_a_clear_400_and_the_server_still_answers(base, name):
    image, words = BAD[name]
    reply = httpx.post(f"{base}/v1/classify", json={"model": "vit", "input": image},
                       timeout=60)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"
    canary = httpx.post(f"{base}/v1/classify", json={"model": "vit",
                                                     "input": data_url(IMAGES[0])}, timeout=60)
    assert canary.status_code == 200, canary.text
    assert canary.json()["data"][0]["label"] in LABELS
