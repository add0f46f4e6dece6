"""Ray Serve model multiplexing end to end: three tiny random BERT embedders built here share
one multiplexed deployment of one replica whose memory limit holds two of them; a group over
two of them routed at the ingress; the real openai SDK against Ray's HTTP proxy, and the
single server's in-process answers as the reference."""

from __future__ import annotations

import socket
import time

import httpx
import numpy as np
import openai
import pytest

from .conftest import MINILM, ROOT, check_clean

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

APP = "hfserve-multiplex"
NAMES = ["tiny-a", "tiny-b", "tiny-c"]
SENTENCES = ["A cat sits on the mat.", "Ray Serve shares replicas between models."]
GROUP = {"name": "pair", "task": "embedding", "models": ["tiny-a", "tiny-b"],
         "weights": {"tiny-a": 1, "tiny-b": 0}}


def tiny_embedder(folder, seed: int):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    BertModel(config).eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(MINILM)).save_pretrained(folder)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_entries(folders: dict, **extra) -> list[dict]:
    return [{"name": name, "source": str(folder), "backend": "torch", "dtype": "float32",
             "threads": 1, "max_wait_ms": 0, **extra} for name, folder in folders.items()]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiplex-models")
    return {name: tiny_embedder(root / name, seed) for seed, name in enumerate(NAMES)}


@pytest.fixture(scope="module")
def reference(folders, tmp_path_factory):
    """Each model's embeddings from the single server, in this process."""
    from fastapi.testclient import TestClient

    from hfserve.api.app import create_app
    from hfserve.config import Settings

    settings = Settings(cache_dir=tmp_path_factory.mktemp("single"), response_cache_bytes=0,
                        preload="none",
                        models=model_entries(folders))
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as single:
        answers = {}
        for name in NAMES:
            got = single.post("/v1/embeddings", json={"model": name, "input": SENTENCES})
            assert got.status_code == 200, got.text
            answers[name] = [d["embedding"] for d in got.json()["data"]]
    return answers


@pytest.fixture(scope="module")
def base(folders, reference, tmp_path_factory):
    from hfserve.config import Settings
    from hfserve.ray.app import build_app
    from hfserve.ray.launch import local_ray_options
    from hfserve.ray.layout import plan
    from hfserve.registry import build_spec
    from hfserve.runtime.lifecycle.footprint import estimate

    tmp = tmp_path_factory.mktemp("ray-multiplex")
    entries = model_entries(folders, ray_multiplex="small", ray_num_cpus=0.5)
    sizes = [estimate(build_spec(mc), "float32")
             for mc in plan(Settings(models=entries))[0].models]
    limit = 2 * max(sizes) + max(sizes) // 2                # two fit, three do not
    ray.init(**local_ray_options(num_cpus=2), runtime_env={"env_vars": {
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}})
    try:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        settings = Settings(cache_dir=tmp / "cache", response_cache_bytes=0,
                            log_level="warning", memory_limits={"cpu": limit},
                            groups=[GROUP], models=entries)
        serve.run(build_app(settings), name=APP, route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/ready", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the application never became ready"
            time.sleep(1)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def client(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0,
                         timeout=120, http_client=httpx.Client(
                             event_hooks={"response": [check_clean]}))


def cards(base: str) -> dict[str, dict]:
    return {m["id"]: m for m in httpx.get(f"{base}/v1/models", timeout=30).json()["data"]}


def settle(base: str, states: dict[str, str]) -> dict[str, dict]:
    """The model cards once the models are in ``states`` (the ingress reads its
    deployments' status every second: the last one may be from before the last load)."""
    for _ in range(60):
        seen = cards(base)
        if {n: seen[n]["state"] for n in states} == states:
            return seen
        time.sleep(0.5)
    raise AssertionError(f"the models never settled: {seen}")


def embed(client, name: str) -> list[list[float]]:
    got = client.embeddings.create(model=name, input=SENTENCES, encoding_format="float")
    assert got.model == name
    return [d.embedding for d in got.data]


def test_one_deployment_holds_what_its_budget_does(base, client, reference):
    listed = cards(base)
    assert {n: listed[n]["state"] for n in NAMES} == dict.fromkeys(NAMES, "unloaded")
    for name in NAMES:       # the third load needs the room of the least recently used
        np.testing.assert_allclose(embed(client, name), reference[name], atol=1e-5)
    assert not np.allclose(reference["tiny-a"], reference["tiny-b"])  # each its own model
    seen = settle(base, {"tiny-a": "unloaded", "tiny-b": "ready", "tiny-c": "ready"})
    assert seen["tiny-a"]["evictions"] == 1
    assert seen["tiny-b"]["evictions"] == seen["tiny-c"]["evictions"] == 0
    # Back to the first: it loads again on the same replica, and another one leaves.
    np.testing.assert_allclose(embed(client, "tiny-a"), reference["tiny-a"], atol=1e-5)
    seen = settle(base, {"tiny-a": "ready", "tiny-b": "unloaded"})
    assert seen["tiny-b"]["evictions"] == 1
    assert sum(seen[n]["state"] == "ready" for n in NAMES) <= 2
    replicas = {s["replica"] for s in _statuses()}
    assert len(replicas) == 1, replicas


def _statuses() -> list[dict]:
    handle = serve.get_deployment_handle("small", app_name=APP)
    return [handle.status.remote().result(timeout_s=30) for _ in range(4)]


def test_a_group_routes_to_its_member_at_the_ingress(base, client, reference):
    raw = client.embeddings.with_raw_response.create(model="pair", input=SENTENCES,
                                                     encoding_format="float")
    got = raw.parse()
    assert got.model == "tiny-a"               # the weights send everything to tiny-a
    np.testing.assert_allclose([d.embedding for d in got.data], reference["tiny-a"],
                               atol=1e-5)
    arms = {a["model"]: a for a in httpx.get(f"{base}/v1/groups/pair", timeout=30)
            .json()["arms"]}
    assert arms["tiny-a"]["requests"] >= 1 and arms["tiny-b"]["requests"] == 0
    fed = httpx.post(f"{base}/v1/feedback", timeout=30, json={
        # Ray's proxy sends an X-Request-Id of its own beside the app's (the same id)
        "id": raw.headers.get_list("x-request-id")[0], "score": 1.0})
    assert fed.status_code == 200, fed.text
    assert fed.json()["model"] == "tiny-a"
    assert cards(base)["pair"]["models"] == ["tiny-a", "tiny-b"]


def test_admin_routes_name_ray_mode(base):
    for path in ("/v1/models/tiny-a/load", "/v1/models/tiny-a/unload"):
        answer = httpx.post(f"{base}{path}", timeout=30)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "not_in_ray_mode" and "Ray mode" in error["message"]


def test_an_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="tiny-z", input="hi")
