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


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MINILM))


def test_tokenize_gives_teis_tokens_with_offsets(http, hf_tokenizer):
    text = "Ünïcödé words, split up!"
    response = http.post("/tokenize", json={"inputs": [text, "hi"], "model": EMBED})
    assert response.status_code == 200, response.text
    first, second = response.json()
    want = hf_tokenizer(text, return_offsets_mapping=True)
    assert [t["id"] for t in first] == want["input_ids"]
    assert first[0] == {"id": hf_tokenizer.cls_token_id, "text": "[CLS]", "special": True,
                        "start": None, "stop": None}
    for token, (start, stop) in zip(first[1:-1], want["offset_mapping"][1:-1], strict=True):
        assert (token["start"], token["stop"], token["text"]) == (start, stop, text[start:stop])
        assert token["special"] is False
    assert [t["id"] for t in second] == hf_tokenizer("hi")["input_ids"]
    bare = http.post("/tokenize", json={"inputs": "hi", "add_special_tokens": False,
                                        "model": EMBED}).json()
    assert [t["id"] for t in bare[0]] == hf_tokenizer("hi", add_special_tokens=False)["input_ids"]


def test_decode_inverts_tokenize_and_refuses_unknown_ids(http, hf_tokenizer):
    ids = hf_tokenizer("A man is eating food.")["input_ids"]
    got = http.post("/decode", json={"ids": [ids, ids[1:3]], "model": EMBED})
    assert got.json() == [hf_tokenizer.decode(ids, skip_special_tokens=True),
                          hf_tokenizer.decode(ids[1:3])]
    kept = http.post("/decode", json={"ids": ids, "skip_special_tokens": False, "model": EMBED})
    assert kept.json() == [hf_tokenizer.decode(ids)] and "[CLS]" in kept.json()[0]
    assert "vocabulary" in tei_error(
        http.post("/decode", json={"ids": [10 ** 7], "model": EMBED}), 422, "Validation")


def test_embed_all_is_every_tokens_hidden_state(http, hf_tokenizer):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(MINILM)).eval()
    response = http.post("/embed_all", json={"inputs": SENTENCES[:2], "model": EMBED})
    assert response.status_code == 200, response.text
    got = response.json()
    for sentence, rows in zip(SENTENCES[:2], got, strict=True):
        features = hf_tokenizer(sentence, return_tensors="pt")
        with torch.inference_mode():
            want = model(**features).last_hidden_state[0].numpy()
        assert np.asarray(rows).shape == want.shape          # unpadded, one row per token
        assert np.abs(np.asarray(rows) - want).max() < 1e-4


def test_info_is_teis_for_an_encoder(http):
    body = http.get("/info", params={"model": EMBED}).json()
    assert body["model_id"] == EMBED and body["model_type"] == {"embedding": {"pooling": "mean"}}
    assert body["max_input_length"] == 256 and body["model_dtype"] == "float32"
    assert body["max_client_batch_size"] >= 1 and body["auto_truncate"] is False
    card = http.get(f"/v1/models/{EMBED}/info").json()
    assert card["id"] == EMBED and card["info"] == body
    assert "name one" in tei_error(http.get("/info"), 422, "Validation")
