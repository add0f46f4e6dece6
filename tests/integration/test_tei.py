"""TEI's routes on the real MiniLM, with huggingface_hub's InferenceClient (which speaks TEI)
as the client where it has the call, and TEI's error body everywhere."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from .conftest import EMBED, MINILM

SENTENCES = ["A man is eating food.", "A man is riding a horse.", "Someone eats a meal."]


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MINILM), device="cpu")


def tei_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == kind, body
    return body["error"]


def test_inference_client_feature_extraction_equals_sentence_transformers(hub_client, st_model):
    client = hub_client("/embed", EMBED)
    got = client.feature_extraction(SENTENCES)
    want = st_model.encode(SENTENCES, normalize_embeddings=True)
    assert np.asarray(got).shape == want.shape
    assert np.abs(np.asarray(got) - want).max() < 1e-4
    one = client.feature_extraction(SENTENCES[0], normalize=True)
    assert np.abs(np.asarray(one).reshape(-1) - want[0]).max() < 1e-4


def test_inference_client_sentence_similarity_equals_cosine(hub_client, st_model):
    client = hub_client("/similarity", EMBED)
    got = client.sentence_similarity(SENTENCES[0], other_sentences=SENTENCES[1:])
    vectors = st_model.encode(SENTENCES, normalize_embeddings=True)
    assert got == pytest.approx((vectors[1:] @ vectors[0]).tolist(), abs=1e-4)


def test_embed_takes_tei_fields_and_a_model_field(http, st_model):
    response = http.post("/embed", json={"inputs": SENTENCES[:2], "normalize": True,
                                         "truncate": True, "model": EMBED})
    assert response.status_code == 200
    want = st_model.encode(SENTENCES[:2], normalize_embeddings=True)
    assert np.abs(np.asarray(response.json()) - want).max() < 1e-4


def test_tei_errors_use_teis_body_and_statuses(http):
    several = http.post("/embed", json={"inputs": "hi"})
    assert "name one" in tei_error(several, 422, "Validation")
    tei_error(http.post("/embed", json={"inputs": "hi", "model": EMBED, "nope": 1}),
              422, "Validation")
    tei_error(http.post("/embed", json={"inputs": [], "model": EMBED}), 422, "Validation")
    tei_error(http.post("/embed", json={"inputs": "word " * 600, "model": EMBED}),
              413, "Validation")
    tei_error(http.post("/predict", json={"inputs": "hi", "model": EMBED}), 424, "Backend")
    tei_error(http.post("/embed", json={"inputs": "hi", "model": "nope"}), 404, "Validation")
