"""The HTTP surface, end to end in-process, with torch-free fake skills."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import fakes
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from conftest import Server

REPLY = " ".join(fakes.REPLY)                  # "hello world the end"
CHAT_URL = "/v1/chat/completions"
KEY = "k3y-for-the-app-tests-Q7x9"


def chat_body(content: str = "hello how are you", **extra: Any) -> dict[str, Any]:
    return {"model": "gen", "messages": [{"role": "user", "content": content}], **extra}


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    return body["error"]


def sse_data(response: httpx.Response) -> list[str]:
    """The data payloads of an SSE body, checking the framing of every event."""
    assert response.headers["content-type"].startswith("text/event-stream")
    text = response.text
    assert text.endswith("\n\n")
    blocks = text.split("\n\n")[:-1]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), blocks
    return [b.removeprefix("data: ") for b in blocks]


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.005)


async def assert_still_serving(server: Server) -> None:
    emb = await server.client.post("/v1/embeddings", json={"model": "emb", "input": "hi"})
    assert emb.status_code == 200, emb.text
    chat = await server.client.post(CHAT_URL, json=chat_body())
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"] == REPLY


# --- health, readiness, models, metrics ---------------------------------------------------
async def test_health(server: Server) -> None:
    response = await server.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


async def test_request_id_is_echoed(server: Server) -> None:
    response = await server.client.get("/health", headers={"x-request-id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"


async def test_ready_when_all_models_loaded(server: Server) -> None:
    response = await server.client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "models": {"emb": "ready", "gen": "ready"}}


async def test_ready_is_503_while_a_model_loads(start, dirs, control) -> None:
    models = [{"source": str(dirs.slow_emb), "name": "slow", "max_wait_ms": 0}]
    async with start(models=models) as srv:
        await wait_until(lambda: srv.engine.manager.entries["slow"].state.value == "loading")
        response = await srv.client.get("/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "not_ready", "models": {"slow": "loading"}}
        busy = await srv.client.post("/v1/embeddings", json={"model": "slow", "input": "hi"})
        assert busy.status_code == 503
        assert error_of(busy)["code"] == "model_loading"
        assert int(busy.headers["retry-after"]) >= 1
        card = (await srv.client.get("/v1/models/slow")).json()
        assert card["state"] == "loading"
        control.load_release.set()
        ready = await srv.wait_ready()
        assert ready.json()["models"] == {"slow": "ready"}
        done = await srv.client.post("/v1/embeddings", json={"model": "slow", "input": "hi"})
        assert done.status_code == 200, done.text


async def test_models_load_on_demand_without_preload(start, control) -> None:
    async with start(preload="none") as srv:
        # Nothing should load at start, so the server is ready: each model loads on use.
        before = await srv.client.get("/ready")
        assert before.status_code == 200
        assert before.json()["models"] == {"emb": "unloaded", "gen": "unloaded"}
        assert control.loads == []
        response = await srv.client.post("/v1/embeddings", json={"model": "emb", "input": "x"})
        assert response.status_code == 200
        assert control.loads == ["emb"]
        assert srv.engine.manager.entries["gen"].state.value == "unloaded"


async def test_model_list(server: Server) -> None:
    response = await server.client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    cards = {card["id"]: card for card in body["data"]}
    assert set(cards) == {"emb", "gen"}
    emb, gen = cards["emb"], cards["gen"]
    assert emb["object"] == "model" and emb["owned_by"] == "hfserve"
    assert (emb["state"], emb["family"], emb["task"]) == ("ready", "encoder-only", "embedding")
    assert (gen["state"], gen["family"], gen["task"]) == \
        ("ready", "decoder-only", "text-generation")
    assert emb["device"] == gen["device"] == "cpu"
    assert gen["max_context"] == 64
    assert gen["architecture"] == "LlamaForCausalLM"
    assert emb["created"] > 0


async def test_one_model_card(server: Server) -> None:
    response = await server.client.get("/v1/models/gen")
    assert response.status_code == 200
    card = response.json()
    assert card["id"] == "gen"
    assert card["tasks"] == ["text-generation"]
    assert card["queue_depth"] == 0
    missing = await server.client.get("/v1/models/nope")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "model_not_found"


def requests_total(text: str, route: str, model: str, status: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name != "hfserve_requests":
            continue
        for sample in family.samples:
            if sample.name == "hfserve_requests_total" and sample.labels == {
                    "route": route, "model": model, "status": status}:
                return sample.value
    return 0.0


async def test_metrics_count_requests(server: Server) -> None:
    labels = ("/v1/embeddings", "emb", "200")
    before = requests_total((await server.client.get("/metrics")).text, *labels)
    await server.client.post("/v1/embeddings", json={"model": "emb", "input": "hi"})
    response = await server.client.get("/metrics")
    assert response.status_code == 200
    assert "hfserve_requests_total" in response.text
    assert requests_total(response.text, *labels) == before + 1


async def test_metrics_give_device_memory_and_process_rss(server: Server) -> None:
    import psutil
    from prometheus_client.parser import text_string_to_metric_families

    text = (await server.client.get("/metrics")).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    total = samples[("hfserve_device_memory_bytes", (("device", "cpu"), ("kind", "total")))]
    assert total == psutil.virtual_memory().total
    used = samples[("hfserve_device_memory_bytes", (("device", "cpu"), ("kind", "used")))]
    assert 0 < used < total
    assert samples[("process_resident_memory_bytes", ())] > 0


# --- embeddings ------------------------------------------------------------------------------
async def test_embeddings_float(server: Server) -> None:
    texts = ["hello world", "a", "once upon a time"]
    response = await server.client.post("/v1/embeddings",
                                        json={"model": "emb", "input": texts})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["model"] == "emb"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    for item, text in zip(body["data"], texts, strict=True):
        assert item["object"] == "embedding"
        assert item["embedding"] == pytest.approx(fakes.embed(text).tolist())
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}


async def test_embeddings_single_string(server: Server) -> None:
    response = await server.client.post("/v1/embeddings",
                                        json={"model": "emb", "input": "just one"})
    data = response.json()["data"]
    assert len(data) == 1
    assert data[0]["embedding"] == pytest.approx(fakes.embed("just one").tolist())


async def test_embeddings_base64(server: Server) -> None:
    texts = ["hello world", "fine thanks"]
    response = await server.client.post(
        "/v1/embeddings", json={"model": "emb", "input": texts, "encoding_format": "base64"})
    assert response.status_code == 200
    for item, text in zip(response.json()["data"], texts, strict=True):
        assert isinstance(item["embedding"], str)
        vector = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        assert vector.shape == (fakes.DIMENSIONS,)
        np.testing.assert_array_equal(vector, fakes.embed(text))


async def test_embeddings_of_token_ids(server: Server) -> None:
    response = await server.client.post("/v1/embeddings",
                                        json={"model": "emb", "input": [[5, 6, 7], [9]]})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data[0]["embedding"] == pytest.approx(fakes.vector_of_ids([5, 6, 7]).tolist())
    assert data[1]["embedding"] == pytest.approx(fakes.vector_of_ids([9]).tolist())
    assert response.json()["usage"]["prompt_tokens"] == 4


async def test_concurrent_embedding_requests_each_get_their_own_vectors(server: Server
                                                                        ) -> None:
    texts = [f"{'word ' * (i + 1)}".strip() for i in range(6)]
    responses = await asyncio.gather(*(
        server.client.post("/v1/embeddings", json={"model": "emb", "input": t})
        for t in texts))
    for response, text in zip(responses, texts, strict=True):
        assert response.json()["data"][0]["embedding"] == \
            pytest.approx(fakes.embed(text).tolist())


# --- chat --------------------------------------------------------------------------------------
async def test_chat_completion(server: Server) -> None:
    response = await server.client.post(CHAT_URL, json=chat_body())
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gen"
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": REPLY, "refusal": None}
    assert choice["finish_reason"] == "stop"
    # user: hello how are you assistant:  -> 6 prompt tokens; 4 reply tokens (eos not counted)
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}


@pytest.mark.parametrize(("field", "value"), [
    ("logit_bias", {"50256": -100}), ("service_tier", "flex"), ("prediction", {"type":
    "content", "content": "x"}), ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]), ("web_search_options", {}), ("functions", []),
    ("store", True), ("reasoning_effort", "low")])
async def test_chat_fields_not_honoured_are_refused_by_name(server: Server, field,
                                                            value) -> None:
    response = await server.client.post(CHAT_URL, json=chat_body(**{field: value}))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == field or field in error["message"]


async def test_chat_fields_honoured_or_harmless_are_taken(server: Server) -> None:
    body = chat_body(user="u-1", metadata={"k": "v"}, store=False, parallel_tool_calls=True)
    assert (await server.client.post(CHAT_URL, json=body)).status_code == 200


async def test_chat_n_2(server: Server) -> None:
    response = await server.client.post(CHAT_URL, json=chat_body(n=2))
    body = response.json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(c["message"]["content"] == REPLY for c in body["choices"])
    assert body["usage"]["completion_tokens"] == 8


async def test_chat_max_tokens_and_stop(server: Server) -> None:
    short = (await server.client.post(CHAT_URL, json=chat_body(max_tokens=2))).json()
    assert short["choices"][0]["message"]["content"] == "hello world"
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] == 2
    stopped = (await server.client.post(CHAT_URL, json=chat_body(stop=["the"]))).json()
    assert stopped["choices"][0]["message"]["content"] == "hello world "
    assert stopped["choices"][0]["finish_reason"] == "stop"


async def test_chat_logprobs(server: Server) -> None:
    body = (await server.client.post(CHAT_URL, json=chat_body(logprobs=True,
                                                              top_logprobs=1))).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in content] == fakes.REPLY
    assert all(t["logprob"] == -0.25 for t in content)
    assert content[0]["bytes"] == list(b"hello")
    assert content[0]["top_logprobs"][0]["token"] == "hello"


async def test_chat_stream(server: Server) -> None:
    response = await server.client.post(
        CHAT_URL, json=chat_body(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = "".join(c["choices"][0]["delta"].get("content") or ""
                      for c in chunks if c["choices"])
    assert content == REPLY
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert finishes.count("stop") == 1
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 6, "completion_tokens": 4,
                                    "total_tokens": 10}


async def test_chat_stream_without_usage(server: Server) -> None:
    response = await server.client.post(CHAT_URL, json=chat_body(stream=True))
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    assert all("usage" not in json.loads(d) or json.loads(d)["usage"] is None
               for d in data[:-1])


# --- completions ---------------------------------------------------------------------------
async def test_completion_with_echo(server: Server) -> None:
    prompt = "once upon a time"
    response = await server.client.post("/v1/completions", json={
        "model": "gen", "prompt": prompt, "echo": True, "max_tokens": 10})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == prompt + REPLY
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}


async def test_completion_echo_with_logprobs_scores_the_prompt(server: Server) -> None:
    response = await server.client.post("/v1/completions", json={
        "model": "gen", "prompt": "once upon a time", "echo": True, "logprobs": 1,
        "max_tokens": 10})
    logprobs = response.json()["choices"][0]["logprobs"]
    assert logprobs["tokens"] == ["upon", "a", "time", *fakes.REPLY]
    assert len(logprobs["token_logprobs"]) == len(logprobs["tokens"])
    offsets = logprobs["text_offset"]
    assert offsets == sorted(offsets) and offsets[0] == 0


async def test_completion_of_several_prompts(server: Server) -> None:
    response = await server.client.post("/v1/completions", json={
        "model": "gen", "prompt": ["hello", "once upon a time"], "max_tokens": 2})
    body = response.json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(c["text"] == "hello world" and c["finish_reason"] == "length"
               for c in body["choices"])
    assert body["usage"]["prompt_tokens"] == 5


async def test_completion_stream(server: Server) -> None:
    response = await server.client.post("/v1/completions", json={
        "model": "gen", "prompt": "hello", "stream": True})
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["text"] for d in data[:-1])
    assert text == REPLY


# --- errors --------------------------------------------------------------------------------------
BAD_REQUESTS = {
    "empty-input": ("/v1/embeddings", {"model": "emb", "input": []}, 400, "input", None),
    "empty-string": ("/v1/embeddings", {"model": "emb", "input": ""}, 400, "input", None),
    "negative-temperature": (CHAT_URL, chat_body(temperature=-0.5), 400, "temperature",
                             None),
    "unknown-field": (CHAT_URL, chat_body(temprature=0.5), 400, "temprature", None),
    "bad-role": (CHAT_URL, {"model": "gen", "messages": [{"role": "robot", "content": "x"}]},
                 400, None, None),
    "no-messages": (CHAT_URL, {"model": "gen", "messages": []}, 400, "messages", None),
    "context": (CHAT_URL, chat_body(max_tokens=1000), 400, "max_tokens",
                "context_length_exceeded"),
    "unknown-model": ("/v1/embeddings", {"model": "nope", "input": "x"}, 404, "model",
                      "model_not_found"),
    "unknown-chat-model": (CHAT_URL, {**chat_body(), "model": "nope"}, 404, "model",
                           "model_not_found"),
    "wrong-task": ("/v1/embeddings", {"model": "gen", "input": "x"}, 400, "model",
                   "unsupported_task"),
    "bad-priority": (CHAT_URL, chat_body(priority="urgent"), 400, "priority", None),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
async def test_bad_request_gets_an_envelope_and_the_server_goes_on(server: Server,
                                                                   case: str) -> None:
    path, body, status, param, code = BAD_REQUESTS[case]
    response = await server.client.post(path, json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    await assert_still_serving(server)


@pytest.mark.parametrize("raw", [
    b'{"model": "gen", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    b'{"model": "gen", "messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}',
])
async def test_non_finite_numbers_are_refused(server: Server, raw: bytes) -> None:
    response = await server.client.post(CHAT_URL, content=raw,
                                        headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"
    await assert_still_serving(server)


async def test_invalid_json(server: Server) -> None:
    response = await server.client.post(CHAT_URL, content=b'{"model": "gen", ',
                                        headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in error_of(response)["message"]
    await assert_still_serving(server)


async def test_unknown_route_uses_the_envelope(server: Server) -> None:
    response = await server.client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found_error"
    wrong_method = await server.client.get(CHAT_URL)
    assert wrong_method.status_code == 405
    error_of(wrong_method)


async def test_oversized_body_is_413(start) -> None:
    async with start(max_body_bytes=1024) as srv:
        await srv.wait_ready()
        big = {"model": "emb", "input": "word " * 400}
        response = await srv.client.post("/v1/embeddings", json=big)
        assert response.status_code == 413
        assert error_of(response)["code"] == "payload_too_large"
        await assert_still_serving(srv)


async def test_oversized_streamed_body_without_length_is_413(start) -> None:
    async with start(max_body_bytes=1024) as srv:
        await srv.wait_ready()
        payload = json.dumps({"model": "emb", "input": "word " * 400}).encode()

        async def chunks():
            for i in range(0, len(payload), 256):
                yield payload[i:i + 256]

        response = await srv.client.post("/v1/embeddings", content=chunks(),
                                          headers={"content-type": "application/json"})
        assert "content-length" not in response.request.headers
        assert response.status_code == 413, response.text
        assert error_of(response)["code"] == "payload_too_large"


async def test_full_queue_is_429_with_retry_after(start, dirs, control) -> None:
    models = [{"source": str(dirs.emb), "name": "emb", "max_queue": 1, "max_batch_size": 1,
               "max_wait_ms": 0}]
    async with start(models=models) as srv:
        await srv.wait_ready()
        running = asyncio.create_task(srv.client.post(
            "/v1/embeddings", json={"model": "emb", "input": fakes.BLOCK}))
        await asyncio.wait_for(asyncio.to_thread(control.run_started.wait, 10), 11)
        batcher = srv.engine.manager.entries["emb"].batcher
        # A full batch is handed to the busy worker to run next; the one after it queues.
        handed = asyncio.create_task(srv.client.post(
            "/v1/embeddings", json={"model": "emb", "input": "handed"}))
        await wait_until(lambda: batcher.in_flight == 2)
        queued = asyncio.create_task(srv.client.post(
            "/v1/embeddings", json={"model": "emb", "input": "queued"}))
        await wait_until(lambda: batcher.queue_depth == 1)
        rejected = await srv.client.post("/v1/embeddings",
                                         json={"model": "emb", "input": "one too many"})
        assert rejected.status_code == 429
        error = error_of(rejected)
        assert (error["type"], error["code"]) == ("rate_limit_error", "queue_full")
        assert int(rejected.headers["retry-after"]) >= 1
        control.run_release.set()
        assert (await running).status_code == 200
        assert (await handed).status_code == 200
        assert (await queued).status_code == 200
        assert ["one too many"] not in control.batches
        after = await srv.client.post("/v1/embeddings", json={"model": "emb", "input": "ok"})
        assert after.status_code == 200


async def test_failure_mid_stream_ends_with_error_event_then_done(server: Server) -> None:
    response = await server.client.post(CHAT_URL, json=chat_body("explode", stream=True))
    assert response.status_code == 200
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])
    assert set(error) == {"error"}
    assert error["error"]["code"] == "model_error"
    chunks = [json.loads(d) for d in data[:-2]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == "hello world"                 # two tokens, then the failure
    await assert_still_serving(server)


async def test_failure_without_stream_is_a_500_envelope(server: Server) -> None:
    response = await server.client.post(CHAT_URL, json=chat_body("explode"))
    assert response.status_code == 500
    error = error_of(response)
    assert (error["type"], error["code"]) == ("server_error", "model_error")
    await assert_still_serving(server)


async def test_client_disconnect_frees_the_slot(start, dirs, control, open_stream) -> None:
    models = [{"source": str(dirs.gen), "name": "gen", "max_concurrent": 1}]
    async with start(models=models) as srv:
        await srv.wait_ready()
        stream = open_stream(srv.app, CHAT_URL, chat_body(fakes.FOREVER, stream=True,
                                                          max_tokens=60))
        seen = b""
        while seen.count(b'"content"') < 3:     # the role chunk and two words
            seen += await stream.next_body()
        assert stream.status == 200
        await stream.hang_up()
        scheduler = srv.engine.manager.entries["gen"].scheduler
        await wait_until(lambda: control.released == [0] and scheduler.running == 0)
        steps = control.decode_steps
        assert steps < 30                          # stopped well before max_tokens
        assert srv.engine._streams == {}
        # The only slot is free: the next request runs to the end.
        response = await srv.client.post(CHAT_URL, json=chat_body())
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == REPLY
        assert control.decode_steps - steps <= 5


async def test_client_disconnect_cancels_a_request_without_stream(start, dirs, control,
                                                                 open_stream) -> None:
    """A client waiting for a whole (non-streamed) answer that leaves cancels it too."""
    models = [{"source": str(dirs.gen), "name": "gen", "max_concurrent": 1}]
    async with start(models=models) as srv:
        await srv.wait_ready()
        stream = open_stream(srv.app, CHAT_URL, chat_body(fakes.FOREVER, max_tokens=60))
        await wait_until(lambda: control.decode_steps >= 3)
        await stream.hang_up()
        scheduler = srv.engine.manager.entries["gen"].scheduler
        await wait_until(lambda: control.released == [0] and scheduler.running == 0)
        assert control.decode_steps < 30           # stopped well before max_tokens
        assert srv.engine._streams == {}


async def test_api_key_guards_the_api_but_not_health(start) -> None:
    async with start(api_key=KEY) as srv:
        await srv.wait_ready()
        denied = await srv.client.post(CHAT_URL, json=chat_body())
        assert denied.status_code == 401
        assert error_of(denied)["type"] == "authentication_error"
        assert (await srv.client.get("/health")).status_code == 200
        allowed = await srv.client.post(CHAT_URL, json=chat_body(),
                                        headers={"authorization": f"Bearer {KEY}"})
        assert allowed.status_code == 200
