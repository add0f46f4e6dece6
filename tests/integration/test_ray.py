"""Ray Serve mode end to end: a local Ray instance (loopback, 2 CPUs, no dashboard), the
application of ``hfserve.ray.build_app`` with MiniLM (two replicas) and SmolLM2, and the
real openai SDK against its HTTP proxy."""

from __future__ import annotations

import socket
import time

import httpx
import numpy as np
import openai
import pytest

from .conftest import CHAT, EMBED, MINILM, ROOT, SMOL, check_clean

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

APP = "hfserve"
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Ray Serve runs replicas.",
             "Paris is the capital of France."]
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_base(tmp_path_factory):
    from hfserve.config import Settings
    from hfserve.ray.app import build_app
    from hfserve.ray.launch import local_ray_options

    if not (MINILM.exists() and SMOL.exists()):
        pytest.fail("demo models missing: run `make models`")
    tmp = tmp_path_factory.mktemp("ray")
    ray.init(**local_ray_options(num_cpus=2), runtime_env={"env_vars": {
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}})
    try:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        settings = Settings(cache_dir=tmp / "cache", response_cache_bytes=0, log_level="warning",
                            models=[
            {"name": EMBED, "source": str(MINILM), "backend": "torch", "threads": 1,
             "ray_replicas": 2, "ray_num_cpus": 0.5},
            {"name": CHAT, "source": str(SMOL), "backend": "torch", "dtype": "float32",
             "threads": 1, "ray_num_cpus": 0.5}])
        serve.run(build_app(settings), name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_client(ray_base):
    return openai.OpenAI(base_url=f"{ray_base}/v1", api_key="unused", max_retries=0,
                         timeout=120, http_client=httpx.Client(
                             event_hooks={"response": [check_clean]}))


def test_ready_and_models(ray_base):
    # The ingress reads each deployment's status every second; a status call that times out
    # on a busy machine reads "unavailable" until the next one answers.
    deadline = time.monotonic() + 120
    while (ready := httpx.get(f"{ray_base}/ready", timeout=30)).status_code != 200 and \
            time.monotonic() < deadline:
        time.sleep(1)
    assert ready.status_code == 200, ready.text
    assert ready.json()["models"] == {EMBED: "ready", CHAT: "ready"}
    listed = httpx.get(f"{ray_base}/v1/models", timeout=30).json()["data"]
    assert {m["id"] for m in listed} == {EMBED, CHAT}
    assert all(m["state"] == "ready" for m in listed)


def test_embeddings_equal_sentence_transformers(ray_client):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(MINILM), device="cpu").encode(SENTENCES)
    got = ray_client.embeddings.create(model=EMBED, input=SENTENCES, encoding_format="float")
    assert [d.index for d in got.data] == [0, 1, 2]
    np.testing.assert_allclose([d.embedding for d in got.data], reference, atol=1e-5)
    assert got.usage.prompt_tokens > len(SENTENCES)


def test_chat_streamed_and_not(ray_client):
    whole = ray_client.chat.completions.create(model=CHAT, messages=HELLO, max_tokens=12,
                                               temperature=0)
    text = whole.choices[0].message.content
    assert text and whole.model == CHAT
    assert "Paris" in text
    assert 0 < whole.usage.completion_tokens <= 12
    chunks = list(ray_client.chat.completions.create(
        model=CHAT, messages=HELLO, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text          # float32 greedy: the same tokens either way
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == \
        whole.choices[0].finish_reason


def test_unknown_model_is_the_single_servers_404(ray_client):
    from fastapi.testclient import TestClient

    from hfserve.api.app import create_app
    from hfserve.config import Settings

    single = TestClient(create_app(Settings(models=[])), base_url="http://127.0.0.1")
    expected = single.post("/v1/embeddings", json={"model": "no-such-model", "input": "hi"})
    assert expected.status_code == 404
    with pytest.raises(openai.NotFoundError) as caught:
        ray_client.embeddings.create(model="no-such-model", input="hi")
    assert caught.value.response.json() == expected.json()
    with pytest.raises(openai.NotFoundError) as chat:
        ray_client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert chat.value.response.json() == expected.json()


def test_bad_input_is_a_clear_400(ray_client):
    with pytest.raises(openai.BadRequestError) as caught:
        ray_client.chat.completions.create(model=CHAT, messages=HELLO, max_tokens=10**6)
    assert caught.value.response.json()["error"]["code"] == "context_length_exceeded"


def test_a_client_that_leaves_ends_its_generation_in_the_replica(ray_base):
    with httpx.stream("POST", f"{ray_base}/v1/chat/completions", timeout=60, json={
            "model": CHAT, "messages": HELLO, "max_tokens": 4000, "stream": True,
            "ignore_eos": True}) as r:
        lines = r.iter_lines()         # read on, not left (leaving it closes the response)
        assert next(lines).startswith("data: ")
        # The ingress reads each deployment's status every second: see this one running.
        assert _in_flight_becomes(ray_base, lambda n: n >= 1), "the generation never showed"
    assert _in_flight_becomes(ray_base, lambda n: n == 0), \
        "generation kept running after the client left"


def _in_flight_becomes(base: str, wanted) -> bool:
    for _ in range(120):
        if wanted(httpx.get(f"{base}/v1/models/{CHAT}", timeout=30).json()["in_flight"]):
            return True
        time.sleep(0.5)
    return False


def _replicas(deployment: str) -> dict[str, int]:
    """Each replica of ``deployment`` and the requests it took, from its status calls."""
    handle = serve.get_deployment_handle(deployment, app_name=APP)
    seen: dict[str, int] = {}
    for _ in range(40):
        status = handle.status.remote().result(timeout_s=30)
        seen[status["replica"]] = status["requests"]
    return seen


def test_both_embedding_replicas_take_traffic(ray_client):
    for i in range(16):
        ray_client.embeddings.create(model=EMBED, input=f"sentence number {i}")
    seen = _replicas(EMBED)
    assert len(seen) == 2, seen
    assert all(count > 0 for count in seen.values()), seen


def _replica_actor(deployment: str):
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].startswith("SERVE_REPLICA::") and f"#{deployment}#" in a["name"]]
    assert len(names) == 1, names
    return ray.get_actor(names[0], namespace="serve")


def test_a_killed_replica_fails_its_stream_and_is_replaced(ray_client):
    stream = ray_client.chat.completions.create(model=CHAT, messages=HELLO, max_tokens=400,
                                                temperature=0, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    ray.kill(_replica_actor(CHAT), no_restart=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "unavailable" in str(caught.value.message)
    deadline = time.monotonic() + 300
    while True:
        try:
            answer = ray_client.chat.completions.create(model=CHAT, messages=HELLO,
                                                        max_tokens=4, temperature=0)
            break
        except openai.APIStatusError as exc:
            assert exc.status_code == 503, exc.response.text
            assert time.monotonic() < deadline, "the replica was not replaced"
            time.sleep(2)
    assert answer.choices[0].message.content
