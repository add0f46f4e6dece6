"""POST /v1/embeddings on all-MiniLM-L6-v2, against sentence-transformers itself."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import openai
import pytest

from .conftest import EMBED, MINILM

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A model server answers many requests at once.",
    "Paris is the capital of France.",
    "Embeddings map text to vectors.",
    "short",
    "Completely unrelated: the weather in Lisbon is mild in winter, with rain in November.",
]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(MINILM), device="cpu")
    return model.encode(SENTENCES, normalize_embeddings=False)


def cosine(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_matches_sentence_transformers(client, reference):
    got = client.embeddings.create(model=EMBED, input=SENTENCES, encoding_format="float")
    assert [d.index for d in got.data] == list(range(len(SENTENCES)))
    for item, ref in zip(got.data, reference, strict=True):
        assert len(item.embedding) == 384
        assert cosine(item.embedding, ref) >= 0.999
        assert abs(np.linalg.norm(item.embedding) - 1) < 1e-4   # the model's Normalize module
    assert got.usage.prompt_tokens > len(SENTENCES)
    assert got.usage.total_tokens == got.usage.prompt_tokens


async def test_same_vector_alone_or_batched_with_others(aclient):
    alone = (await aclient.embeddings.create(model=EMBED, input=SENTENCES[0],
                                             encoding_format="float")).data[0].embedding
    crowd = [aclient.embeddings.create(model=EMBED, input=s, encoding_format="float")
             for s in SENTENCES * 4]
    results = await asyncio.gather(*crowd)
    batched = [r.data[0].embedding for r, s in zip(results, SENTENCES * 4, strict=True)
               if s == SENTENCES[0]]
    assert len(batched) == 4
    for vec in batched:
        assert cosine(vec, alone) >= 0.99999
        assert np.allclose(vec, alone, atol=1e-5)


def test_base64_decodes_to_the_float_vectors(loose_client):
    loose = loose_client
    as_b64 = loose.embeddings.create(model=EMBED, input=SENTENCES[:2],
                                     encoding_format="base64")
    as_float = loose.embeddings.create(model=EMBED, input=SENTENCES[:2],
                                       encoding_format="float")
    for a, b in zip(as_b64.data, as_float.data, strict=True):
        decoded = np.frombuffer(base64.b64decode(a.embedding), dtype="<f4")
        assert decoded.shape == (384,)
        assert np.allclose(decoded, b.embedding, atol=1e-6)


def test_token_id_input_and_alias(client, reference):
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(MINILM))(SENTENCES[2])["input_ids"]
    got = client.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2",
                                   input=[ids], encoding_format="float")
    assert cosine(got.data[0].embedding, reference[2]) >= 0.999
    assert got.usage.prompt_tokens == len(ids)


def test_dimensions_truncates_and_renormalises(client):
    got = client.embeddings.create(model=EMBED, input="hello", dimensions=64,
                                   encoding_format="float")
    vec = np.asarray(got.data[0].embedding)
    assert vec.shape == (64,)
    assert abs(np.linalg.norm(vec) - 1) < 1e-4


@pytest.mark.parametrize("bad", ["", [], [""], [["x"]]])
def test_empty_or_malformed_input_is_400(client, bad):
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=EMBED, input=bad, encoding_format="float")
    assert err.value.body["type"] == "invalid_request_error"


def test_too_long_input_is_400_unless_truncated(client):
    long_text = "word " * 2000
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=EMBED, input=long_text, encoding_format="float")
    assert err.value.body["code"] == "context_length_exceeded"
    got = client.embeddings.create(model=EMBED, input=long_text, encoding_format="float",
                                   extra_body={"truncate": True})
    assert got.usage.prompt_tokens == 256
