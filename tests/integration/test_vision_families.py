"""Object detection, image segmentation and CLIP-style models, each a tiny random model built
here from a small config (its PIL image processor saved beside it), served together by one
server: /v1/detect, /v1/segment, /v1/embeddings (the openai SDK, with Infinity's
``modality``), /v1/classify and /v1/infer answer as transformers' pipelines (or, for CLIP
embeddings, the model's own projected features) do on the same folders, and a truncated
PNG on each route is a clear 400 after which the server still answers."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest

from .conftest import MINILM, serve_folders
from .images import data_url, decoded, pipe, png_bytes, truncated

LABELS = ["cat", "dog", "bird"]
LABEL_IDS = {"id2label": dict(enumerate(LABELS)),
             "label2id": {name: i for i, name in enumerate(LABELS)}}
# Different sizes: DETR keeps each image's aspect ratio, so these do not share a shape.
IMAGES = [png_bytes(1, (48, 40)), png_bytes(2, (30, 57)), png_bytes(3, (48, 40))]


def tiny_detr(folder):
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessorPil, ResNetConfig

    torch.manual_seed(0)
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                            out_features=["stage1", "stage2"])
    config = DetrConfig(use_timm_backbone=False, backbone_config=backbone,
                        use_pretrained_backbone=False, d_model=16, encoder_layers=1,
                        decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=12,
                        init_std=0.5, num_labels=len(LABELS), **LABEL_IDS)
    DetrForObjectDetection(config).eval().save_pretrained(folder)
    DetrImageProcessorPil(size={"shortest_edge": 32, "longest_edge": 64}).save_pretrained(folder)
    return folder


def tiny_segformer(folder):
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    # transformers marks this PIL class as needing torchvision; only its label-map
    # resizing does, so it is imported from its module (as the server does).
    from transformers.models.segformer.image_processing_pil_segformer import (
        SegformerImageProcessorPil,
    )

    torch.manual_seed(0)
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                             hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2],
                             num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=16, initializer_range=0.5,
                             num_labels=len(LABELS), **LABEL_IDS)
    SegformerForSemanticSegmentation(config).eval().save_pretrained(folder)
    SegformerImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def tiny_clip(folder):
    """CLIP with MiniLM's (BERT) tokenizer: its text tower pools at [SEP], the eos id."""
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessorPil, CLIPModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(MINILM))
    text = {"vocab_size": tokenizer.vocab_size, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.cls_token_id,
            "eos_token_id": tokenizer.sep_token_id}
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "intermediate_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 2}
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)
              ).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32},
                          crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    if not MINILM.exists():
        pytest.skip("the MiniLM model folder (its tokenizer) is not installed")
    root = tmp_path_factory.mktemp("vision-families")
    return {"detr": tiny_detr(root / "detr"), "segformer": tiny_segformer(root / "segformer"),
            "clip": tiny_clip(root / "clip")}


@pytest.fixture(scope="module")
def base(models, tmp_path_factory):
    yield from serve_folders(models, tmp_path_factory.mktemp("vision-families-server"),
                             max_image_pixels=1_000_000)


def post(base: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, timeout=120)


def test_detect_answers_as_the_pipeline(base, models):
    detector = pipe(models["detr"], "object-detection")
    expected = [detector(image, threshold=0.13) for image in decoded(IMAGES)]
    assert any(expected) and not all(len(e) == 12 for e in expected)   # a threshold bites
    reply = post(base, "/v1/detect", {"model": "detr", "threshold": 0.13,
                                      "input": [data_url(b) for b in IMAGES]})
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2]
    for row, want in zip(data, expected, strict=True):
        got = row["objects"]
        assert [(o["label"], o["box"]) for o in got] == [(w["label"], w["box"]) for w in want]
        assert [o["score"] for o in got] == pytest.approx([w["score"] for w in want],
                                                          abs=1e-4)


def test_infer_detects_one_image_as_the_pipeline(base, models):
    want = pipe(models["detr"], "object-detection")(decoded(IMAGES[1:2])[0], threshold=0.13)
    reply = post(base, "/v1/infer/detr", {"inputs": base64.b64encode(IMAGES[1]).decode(),
                                          "parameters": {"threshold": 0.13}})
    assert reply.status_code == 200, reply.text
    got = reply.json()
    assert [(o["label"], o["box"]) for o in got] == [(w["label"], w["box"]) for w in want]
    assert [o["score"] for o in got] == pytest.approx([w["score"] for w in want], abs=1e-4)


def mask_pixels(mask: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(mask))))


def test_segment_masks_are_the_pipelines_pixel_for_pixel(base, models):
    segmenter = pipe(models["segformer"], "image-segmentation")
    expected = [segmenter(image) for image in decoded(IMAGES)]
    assert any(len(e) > 1 for e in expected)          # more than one label in some image
    reply = post(base, "/v1/segment", {"model": "segformer",
                                       "input": [data_url(b) for b in IMAGES]})
    assert reply.status_code == 200, reply.text
    for row, want in zip(reply.json()["data"], expected, strict=True):
        got = row["segments"]
        assert [(s["label"], s["score"]) for s in got] == [(w["label"], w["score"])
                                                           for w in want]
        for segment, wanted in zip(got, want, strict=True):
            np.testing.assert_array_equal(mask_pixels(segment["mask"]),
                                          np.asarray(wanted["mask"]))


def test_infer_segments_as_the_pipeline(base, models):
    want = pipe(models["segformer"], "image-segmentation")(decoded(IMAGES[:1])[0])
    reply = post(base, "/v1/infer/segformer", {"inputs": data_url(IMAGES[0])})
    assert reply.status_code == 200, reply.text
    got = reply.json()
    assert [s["label"] for s in got] == [w["label"] for w in want]
    for segment, wanted in zip(got, want, strict=True):
        np.testing.assert_array_equal(mask_pixels(segment["mask"]), np.asarray(wanted["mask"]))


def clip_features(folder, texts: list[str], blobs: list[bytes]):
    """What the server should answer: the model's projected features, L2-normalised."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    from hfserve.skills.image_processing import image_processor

    class Folder:
        path = folder

    model = CLIPModel.from_pretrained(str(folder)).eval()
    tokens = AutoTokenizer.from_pretrained(str(folder))(texts, padding=True,
                                                       return_tensors="pt")
    pixels = image_processor(Folder)(images=decoded(blobs), return_tensors="pt")
    with torch.inference_mode():
        text = model.get_text_features(input_ids=tokens["input_ids"],
                                       attention_mask=tokens["attention_mask"]).pooler_output
        image = model.get_image_features(**pixels).pooler_output
    norm = torch.nn.functional.normalize
    return norm(text, dim=-1).numpy(), norm(image, dim=-1).numpy()


def test_clip_embeds_texts_and_images_in_one_space(base, models):
    from openai import OpenAI

    client = OpenAI(base_url=f"{base}/v1", api_key="unused")
    texts = ["a photo of a cat", "a dog"]
    want_text, want_image = clip_features(models["clip"], texts, IMAGES)
    text = client.embeddings.create(model="clip", input=texts)
    image = client.embeddings.create(model="clip", input=[data_url(b) for b in IMAGES],
                                     extra_body={"modality": "image"})
    got_text = np.array([d.embedding for d in text.data])
    got_image = np.array([d.embedding for d in image.data])
    assert got_text.shape == (2, 8) and got_image.shape == (3, 8)
    np.testing.assert_allclose(got_text, want_text, atol=1e-4)
    np.testing.assert_allclose(got_image, want_image, atol=1e-4)
    # one space: a text and an image compare by their dot product
    assert float(got_text[0] @ got_image[0]) == pytest.approx(
        float(want_text[0] @ want_image[0]), abs=1e-4)


def test_the_same_string_as_text_and_as_image_are_cached_apart(base):
    from openai import OpenAI

    client = OpenAI(base_url=f"{base}/v1", api_key="unused")
    bare = base64.b64encode(IMAGES[0]).decode()
    text = {"truncate": True}      # base64 read as text is far longer than 32 tokens
    as_text = client.embeddings.create(model="clip", input=bare,
                                       extra_body=text).data[0].embedding
    as_image = client.embeddings.create(model="clip", input=bare, extra_body={
        "modality": "image", "truncate": True}).data[0].embedding
    again = client.embeddings.create(model="clip", input=bare,
                                     extra_body=text).data[0].embedding
    assert not np.allclose(as_text, as_image)
    assert again == as_text


def test_zero_shot_image_classification_answers_as_the_pipeline(base, models):
    labels = ["cat", "dog", "a car"]
    classifier = pipe(models["clip"], "zero-shot-image-classification")
    want = classifier(decoded(IMAGES[:1])[0], candidate_labels=labels)
    reply = post(base, "/v1/infer/clip", {"inputs": data_url(IMAGES[0]),
                                          "parameters": {"candidate_labels": labels}})
    assert reply.status_code == 200, reply.text
    got = reply.json()
    assert [r["label"] for r in got] == [w["label"] for w in want]
    assert [r["score"] for r in got] == pytest.approx([w["score"] for w in want], abs=1e-4)
    template = "an image of {}"
    want_all = [classifier(image, candidate_labels=labels, hypothesis_template=template)
                for image in decoded(IMAGES)]
    reply = post(base, "/v1/classify", {"model": "clip", "candidate_labels": labels,
                                        "hypothesis_template": template,
                                        "input": [data_url(b) for b in IMAGES]})
    assert reply.status_code == 200, reply.text
    for row, want_one in zip(reply.json()["data"], want_all, strict=True):
        assert row["label"] == want_one[0]["label"] and row["num_classes"] == len(labels)
        scores = {w["label"]: w["score"] for w in want_one}
        assert row["probs"] == pytest.approx([scores[label] for label in labels], abs=1e-4)


BAD = {
    "detect": ("/v1/detect", {"model": "detr"}),
    "segment": ("/v1/segment", {"model": "segformer"}),
    "embeddings": ("/v1/embeddings", {"model": "clip", "modality": "image"}),
    "classify": ("/v1/classify", {"model": "clip", "candidate_labels": ["cat", "dog"]}),
    "infer": ("/v1/infer/detr", {}),
}


@pytest.mark.parametrize("route", sorted(BAD))
def test_a_truncated_png_is_a_400_and_the_server_still_answers(base, route):
    path, body = BAD[route]
    field = "inputs" if route == "infer" else "input"
    reply = post(base, path, {**body, field: [data_url(IMAGES[0]), truncated(IMAGES[1])]})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "truncated" in error["message"]
    again = post(base, path, {**body, field: [data_url(IMAGES[0])]})
    assert again.status_code == 200, again.text


def test_a_model_without_the_task_is_a_clear_400(base):
    reply = post(base, "/v1/detect", {"model": "segformer", "input": data_url(IMAGES[0])})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["type"] == "invalid_request_error"
    reply = post(base, "/v1/classify", {"model": "clip", "input": data_url(IMAGES[0])})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "candidate_labels"
    reply = post(base, "/embed_all", {"model": "clip", "inputs": "a cat"})   # TEI's route
    assert reply.status_code == 422, reply.text
    assert "one vector per input" in reply.json()["error"]
