"""The response cache on a real server (MiniLM on eager torch, a tiny reranker): a repeated
request is answered from the cache, byte for byte; a request repeating some inputs runs
only the others; other options, `Cache-Control: no-cache` and a model deleted and registered
again miss; the cache never holds more than its bound."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from openai import OpenAI

from .conftest import MINILM, launch, stop
from .test_classify import tiny_classifier

BOUND = 64 * 1024          # about 33 MiniLM vectors


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cache-server")
    reranker = tiny_classifier(tmp / "reranker", labels={0: "LABEL_0"})
    config = {"cache_dir": str(tmp / "cache"), "response_cache_bytes": BOUND,
              "model_roots": [str(MINILM.resolve().parent)],
              "models": [
                  {"name": "minilm", "source": str(MINILM), "backend": "torch", "threads": 1},
                  {"name": "reranker", "source": str(reranker), "backend": "torch",
                   "dtype": "float32", "threads": 1}]}
    proc, url, log = launch(config, tmp)
    yield url
    stop(proc, log)


@pytest.fixture
def http(base):
    with httpx.Client(base_url=base, timeout=120) as client:
        yield client


def metric(http, name: str, **labels: str) -> float:
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                     if labels else "")
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def lookups(http, model: str = "minilm") -> tuple[float, float]:
    return (metric(http, "hfserve_cache_requests_total", model=model, result="hit"),
            metric(http, "hfserve_cache_requests_total", model=model, result="miss"))


def embed(http, texts, **fields):
    headers = fields.pop("headers", None)
    response = http.post("/v1/embeddings", headers=headers,
                         json={"model": "minilm", "input": texts, **fields})
    assert response.status_code == 200, response.text
    return response


def test_a_repeated_request_is_a_hit_and_byte_identical(base, http) -> None:
    client = OpenAI(base_url=f"{base}/v1", api_key="unused")
    texts = ["the cache keeps this sentence", "and this one"]
    hits, misses = lookups(http)
    first = client.embeddings.with_raw_response.create(model="minilm", input=texts)
    assert lookups(http) == (hits, misses + 2)
    second = client.embeddings.with_raw_response.create(model="minilm", input=texts)
    assert lookups(http) == (hits + 2, misses + 2)
    assert second.http_response.content == first.http_response.content
    vectors = second.parse().data
    assert len(vectors) == 2 and len(vectors[0].embedding) == 384
    assert vectors[0].embedding != vectors[1].embedding


def test_a_batch_repeating_some_inputs_runs_only_the_others(http) -> None:
    seen = ["partly seen one", "partly seen two"]
    alone = [embed(http, [t]).json()["data"][0]["embedding"] for t in seen]
    hits, misses = lookups(http)
    mixed = embed(http, ["partly new one", seen[1], "partly new two", seen[0]]).json()
    assert lookups(http) == (hits + 2, misses + 2)
    got = [d["embedding"] for d in mixed["data"]]
    assert [d["index"] for d in mixed["data"]] == [0, 1, 2, 3]
    assert got[1] == alone[1] and got[3] == alone[0]
    fresh = embed(http, ["partly new one"], headers={"Cache-Control": "no-cache"}).json()
    np.testing.assert_allclose(got[0], fresh["data"][0]["embedding"], atol=1e-6)
    assert mixed["usage"]["prompt_tokens"] == sum(
        embed(http, [t]).json()["usage"]["prompt_tokens"]
        for t in ["partly new one", seen[1], "partly new two", seen[0]])


def test_an_input_repeated_within_a_request_is_stored_once(http) -> None:
    hits, misses = lookups(http)
    held = metric(http, "hfserve_cache_bytes")
    data = embed(http, ["said twice", "said twice"]).json()["data"]
    assert data[0]["embedding"] == data[1]["embedding"]
    assert lookups(http) == (hits, misses + 2)
    grown = metric(http, "hfserve_cache_bytes") - held
    embed(http, ["said once only"])
    assert metric(http, "hfserve_cache_bytes") - held == pytest.approx(2 * grown, abs=64)
    embed(http, ["said twice"])
    assert lookups(http) == (hits + 1, misses + 3)


def test_another_dimensions_is_a_miss(http) -> None:
    text = ["dimensions change the answer"]
    full = embed(http, text).json()["data"][0]["embedding"]
    hits, misses = lookups(http)
    short = embed(http, text, dimensions=32).json()["data"][0]["embedding"]
    assert lookups(http) == (hits, misses + 1)
    assert len(full) == 384 and len(short) == 32
    embed(http, text, dimensions=32)
    assert lookups(http) == (hits + 1, misses + 1)


def test_no_cache_runs_and_stores_nothing(http) -> None:
    text = ["asked not to be cached"]
    hits, misses = lookups(http)
    held = metric(http, "hfserve_cache_bytes")
    for value in ("no-cache", "no-store"):
        embed(http, text, headers={"Cache-Control": value})
    assert lookups(http) == (hits, misses)          # not even looked up
    assert metric(http, "hfserve_cache_bytes") == held
    embed(http, text)                               # so the first plain request misses
    assert lookups(http) == (hits, misses + 1)


def test_the_cache_never_holds_more_than_its_bound(http) -> None:
    evicted = metric(http, "hfserve_cache_evictions_total")
    for batch in range(8):
        embed(http, [f"distinct sentence {batch} {i}" for i in range(12)])
        held = metric(http, "hfserve_cache_bytes")
        assert 0 < held <= BOUND
    assert metric(http, "hfserve_cache_evictions_total") >= evicted + 96 - BOUND // 1500
    hits, misses = lookups(http)
    embed(http, ["distinct sentence 0 0"])          # long evicted
    assert lookups(http) == (hits, misses + 1)


def test_rerank_repeated_is_a_hit_with_the_same_scores(http) -> None:
    body = {"model": "reranker", "query": "which film", "documents": [
        "a film about a cat", "a recipe for bread", "the film of the year"]}
    hits, misses = lookups(http, "reranker")
    first = http.post("/v1/rerank", json=body).json()
    assert lookups(http, "reranker") == (hits, misses + 3)
    second = http.post("/v1/rerank", json=body).json()
    assert lookups(http, "reranker") == (hits + 3, misses + 3)
    assert first["results"] == second["results"] and len(first["results"]) == 3


def test_a_deleted_model_takes_its_results_along(http) -> None:
    def register() -> None:
        made = http.post("/v1/models", json={"id": "spare", "source": str(MINILM),
                                             "backend": "torch", "threads": 1})
        assert made.status_code in (200, 201), made.text

    register()
    text = {"model": "spare", "input": ["kept for the spare model"]}
    for _ in range(2):
        assert http.post("/v1/embeddings", json=text).status_code == 200
    hits, misses = lookups(http, "spare")
    assert (hits, misses) == (1, 1)                 # stored, then found
    held = metric(http, "hfserve_cache_bytes")
    assert http.delete("/v1/models/spare").status_code == 204
    assert metric(http, "hfserve_cache_bytes") < held
    register()                                      # the same name and files again
    assert http.post("/v1/embeddings", json=text).status_code == 200
    assert lookups(http, "spare") == (hits, misses + 1)
    assert http.delete("/v1/models/spare").status_code == 204
