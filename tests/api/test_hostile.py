"""Single requests that must not harm the running server: each is refused or handled with a
clear error in OpenAI's envelope, and the server serves the next request as before."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING

import fakes
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_app import CHAT_URL, KEY, REPLY, assert_still_serving, chat_body, error_of, wait_until

from hfserve.types import Task

if TYPE_CHECKING:
    from conftest import Server

COMPLETIONS = "/v1/completions"


async def post_raw(server: Server, url: str, body: dict):
    """POST ``body`` as JSON with non-ASCII escaped: a lone surrogate travels as ``\\ud800``,
    as any JSON client can send it."""
    return await server.client.post(url, content=json.dumps(body).encode(),
                                    headers={"content-type": "application/json"})


def completion(prompt, **extra):
    return {"model": "gen", "prompt": prompt, **extra}


# --- a request's fan-out is admitted, refused and ended as one ----------------------------
async def test_a_prompt_list_past_the_sequence_limit_is_a_400(start, dirs) -> None:
    async with start(max_request_sequences=4) as srv:
        await srv.wait_ready()
        response = await srv.client.post(COMPLETIONS, json=completion(["hello"] * 3, n=2))
        assert response.status_code == 400
        error = error_of(response)
        assert (error["code"], error["param"]) == ("too_many_sequences", "prompt")
        assert "at most 4" in error["message"]
        assert srv.engine.manager.entries["gen"].scheduler.queue_depth == 0
        assert fakes.CONTROL.prefills == []
        await assert_still_serving(srv)


async def test_a_prompt_list_longer_than_the_queue_is_a_400_not_a_429(start, dirs) -> None:
    models = [{"source": str(dirs.gen), "name": "gen", "max_queue": 8}]
    async with start(models=models) as srv:
        await srv.wait_ready()
        response = await srv.client.post(COMPLETIONS, json=completion(["hello"] * 9))
        assert response.status_code == 400
        assert "retry-after" not in response.headers
        assert "at most 8" in error_of(response)["message"]


async def test_a_prompt_list_without_room_for_all_queues_none(start, dirs, control) -> None:
    models = [{"source": str(dirs.gen), "name": "gen", "max_concurrent": 1, "max_queue": 3}]
    async with start(models=models) as srv:
        await srv.wait_ready()
        scheduler = srv.engine.manager.entries["gen"].scheduler
        running = asyncio.create_task(srv.client.post(
            CHAT_URL, json=chat_body(fakes.FOREVER, max_tokens=40)))
        await wait_until(lambda: scheduler.running == 1)
        waiting = asyncio.create_task(srv.client.post(CHAT_URL, json=chat_body()))
        await wait_until(lambda: scheduler.queue_depth == 1)
        refused = await srv.client.post(COMPLETIONS, json=completion(["hello"] * 3))
        assert refused.status_code == 429
        assert scheduler.queue_depth == 1            # none of the three was queued
        assert (await running).status_code == 200
        assert (await waiting).status_code == 200
        assert len(control.prefills) == 2


async def test_a_failing_prompt_ends_its_siblings_at_once(start, dirs, control) -> None:
    # One sequence at a time: the failing prompt runs first, its siblings wait behind it.
    models = [{"source": str(dirs.gen), "name": "gen", "max_concurrent": 1}]
    async with start(models=models) as srv:
        await srv.wait_ready()
        scheduler = srv.engine.manager.entries["gen"].scheduler
        response = await srv.client.post(COMPLETIONS, json=completion(
            [fakes.EXPLODE, fakes.FOREVER, fakes.FOREVER], max_tokens=60))
        assert response.status_code == 500
        assert error_of(response)["code"] == "model_error"
        await wait_until(lambda: scheduler.running == 0 and scheduler.queue_depth == 0)
        assert len(control.prefills) <= 2      # at most one sibling started before the end
        assert control.decode_steps < 10
        assert srv.engine._streams == {}
        response = await srv.client.post(CHAT_URL, json=chat_body())
        assert response.json()["choices"][0]["message"]["content"] == REPLY


# --- clients that leave ------------------------------------------------------------------
async def client_closed_count(server: Server) -> float:
    text = (await server.client.get("/metrics")).text
    labels = {"model": "gen", "route": CHAT_URL, "status": "499"}
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "hfserve_requests_total" and sample.labels == labels)


async def test_a_non_streamed_request_is_cancelled_when_its_client_leaves(
        start, dirs, control, open_stream) -> None:
    models = [{"source": str(dirs.gen), "name": "gen", "max_concurrent": 1}]
    async with start(models=models) as srv:
        await srv.wait_ready()
        scheduler = srv.engine.manager.entries["gen"].scheduler
        closed = await client_closed_count(srv)
        request = open_stream(srv.app, CHAT_URL, chat_body(fakes.FOREVER, max_tokens=60))
        await wait_until(lambda: control.decode_steps >= 3)
        await request.hang_up()
        await wait_until(lambda: control.released == [0] and scheduler.running == 0)
        assert control.decode_steps < 30
        assert srv.engine._streams == {}
        assert await client_closed_count(srv) == closed + 1     # counted, as a 499
        response = await srv.client.post(CHAT_URL, json=chat_body())
        assert response.json()["choices"][0]["message"]["content"] == REPLY


# --- metric labels ------------------------------------------------------------------------
async def test_client_chosen_model_names_never_become_metric_labels(server: Server) -> None:
    await server.client.post("/v1/embeddings", json={"model": "nope", "input": "hi"})
    await server.client.post(CHAT_URL, json={**chat_body(), "model": "nope"})
    before = len((await server.client.get("/metrics")).text)
    for i in range(200):
        name = f"{i}-" + "x" * 2000
        response = await server.client.post("/v1/embeddings",
                                            json={"model": name, "input": "hi"})
        assert response.status_code == 404
    odd = await post_raw(server, CHAT_URL, {**chat_body(), "model": "x\ud800"})
    assert odd.status_code == 404
    assert "\\ud800" in error_of(odd)["message"]
    after = await server.client.get("/metrics")
    assert after.status_code == 200
    assert len(after.text) - before < 2000           # the counts grew, not the label sets
    assert "xxxxxxxxxx" not in after.text
    assert 'model="unknown"' in after.text


# --- sampling values ----------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "param"), [
    ({"seed": 2**64}, "seed"), ({"seed": -2}, "seed"), ({"top_k": 2**64}, "top_k"),
    ({"stop_token_ids": [-1]}, "stop_token_ids.0"), ({"stop_token_ids": [2**70]},
                                                     "stop_token_ids.0"),
    ({"stop_token_ids": [999]}, "stop_token_ids"), ({"max_tokens": 2**64}, "max_tokens"),
])
async def test_out_of_range_sampling_values_are_a_400_naming_them(server: Server, extra,
                                                                   param: str) -> None:
    for url, body in ((CHAT_URL, chat_body(**extra)), (COMPLETIONS, completion("hi", **extra))):
        response = await server.client.post(url, json=body)
        assert response.status_code == 400, response.text
        assert error_of(response)["param"] == param


async def test_seed_minus_one_means_a_random_seed(server: Server) -> None:
    response = await server.client.post(CHAT_URL, json=chat_body(seed=-1, top_k=-1))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == REPLY


# --- text that is not Unicode -------------------------------------------------------------
@pytest.mark.parametrize(("url", "body", "param"), [
    (CHAT_URL, chat_body("a\ud800b"), "messages"),
    (CHAT_URL, {"model": "gen", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "\udfff"}]}]}, "messages"),
    (CHAT_URL, chat_body(stop=["a\ud800"]), "stop"),
    (COMPLETIONS, completion("a\ud800b"), "prompt"),
    ("/v1/embeddings", {"model": "emb", "input": ["fine", "a\ud800b"]}, "input.1"),
])
async def test_a_lone_surrogate_is_a_400_before_tokenizing(server: Server, url, body,
                                                           param) -> None:
    response = await post_raw(server, url, body)
    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == param
    assert fakes.CONTROL.prefills == [] and fakes.CONTROL.batches == []
    await assert_still_serving(server)


# --- requests that can never succeed are not 429s ----------------------------------------
async def test_too_many_embedding_inputs_is_a_400_naming_the_limit(server: Server) -> None:
    response = await server.client.post("/v1/embeddings",
                                        json={"model": "emb", "input": ["a"] * 100_000})
    assert response.status_code == 400
    assert "retry-after" not in response.headers
    error = error_of(response)
    assert (error["code"], error["param"]) == ("too_many_inputs", "input")
    assert "at most 1024" in error["message"]         # the model's max_queue
    assert fakes.CONTROL.batches == []


# --- headers ------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", [b"Bearer \xff\xfe", "Bearer héllo".encode(), b"\x80",
                                  b"Bearer ", b"Bearer wrong-k3y-for-the-app-tests"])
async def test_a_malformed_authorization_header_is_a_401(start, auth: bytes) -> None:
    async with start(api_key=KEY) as srv:
        await srv.wait_ready()
        response = await srv.client.post(CHAT_URL, json=chat_body(),
                                         headers={"authorization": auth})
        assert response.status_code == 401
        assert error_of(response)["type"] == "authentication_error"
        ok = await srv.client.post(CHAT_URL, json=chat_body(),
                                   headers={"authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200


@pytest.mark.parametrize("given", [b"\xff\xfeid", b"x" * 300, b"has space"])
async def test_an_unusable_request_id_is_replaced(server: Server, given: bytes) -> None:
    response = await server.client.get("/health", headers={"x-request-id": given})
    assert response.status_code == 200
    assert response.headers["x-request-id"].encode() != given
    assert len(response.headers["x-request-id"]) == 32


# --- liveness -----------------------------------------------------------------------------
async def test_a_model_that_keeps_dying_makes_liveness_fail(start, dirs) -> None:
    async with start() as srv:
        await srv.wait_ready()
        manager = srv.engine.manager
        entry = manager.entries["gen"]
        for _ in range(entry.restarts.most):          # within the budget: loaded again
            manager._restart_later(entry, "the model process exited")
            await srv.wait_ready()
            assert (await srv.client.get("/health")).status_code == 200
        manager._restart_later(entry, "the model process exited")
        health = await srv.client.get("/health")
        assert health.status_code == 503
        assert set(health.json()["models"]) == {"gen"}
        assert "not again" in health.json()["models"]["gen"]
        assert (await srv.client.get("/ready")).status_code == 503
        emb = await srv.client.post("/v1/embeddings", json={"model": "emb", "input": "hi"})
        assert emb.status_code == 200                  # the others keep serving


async def test_shutdown_ends_running_streams_with_finish_reason_abort(server: Server) -> None:
    response_task = asyncio.create_task(server.client.post(
        CHAT_URL, json=chat_body(fakes.FOREVER, stream=True, max_tokens=60)))
    await wait_until(lambda: len(server.engine._streams) == 1)
    server.engine.begin_drain()
    refused = await server.client.post(CHAT_URL, json=chat_body())
    assert refused.status_code == 503
    assert error_of(refused)["code"] == "server_shutting_down"
    assert (await server.client.get("/ready")).status_code == 503
    assert server.engine.end_streams("the server is shutting down") == 1
    response = await response_task
    body = response.text.split("\n\n")
    assert body[-2] == "data: [DONE]"
    last = json.loads(body[-3].removeprefix("data: "))
    assert last["choices"][0]["finish_reason"] == "abort"
    assert "server_shutting_down" not in response.text


async def test_shutdown_ends_a_tgi_stream_with_an_error_event(server: Server) -> None:
    """TGI has no abort reason: its stream ends with the error event."""
    response_task = asyncio.create_task(server.client.post("/generate_stream", json={
        "model": "gen", "inputs": fakes.FOREVER, "parameters": {"max_new_tokens": 60}}))
    await wait_until(lambda: len(server.engine._streams) == 1)
    server.engine.begin_drain()
    assert server.engine.end_streams("the server is shutting down") == 1
    response = await response_task
    assert "the server is shutting down" in response.text.split("\n\n")[-2]


# --- a task the loaded skill does not serve ----------------------------------------------
async def test_a_task_the_loaded_skill_does_not_serve_is_a_400(server: Server) -> None:
    """The config of a causal LM lists feature extraction too; its generation skill does
    not do it: embeddings of it are a 400 naming what it serves, not a 500."""
    entry = server.engine.manager.entries["gen"]
    entry.spec = dataclasses.replace(entry.spec, tasks=(*entry.spec.tasks,
                                                        Task.FEATURE_EXTRACTION, Task.EMBEDDING))
    response = await server.client.post("/v1/embeddings", json={"model": "gen", "input": "hi"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "unsupported_task"
    assert error["message"] == "model 'gen' serves text-generation, not embedding"
    card = (await server.client.get("/v1/models/gen")).json()
    assert card["tasks"] == ["text-generation"]
    chat = await server.client.post(CHAT_URL, json={**chat_body(), "model": "emb"})
    assert chat.status_code == 400
    assert error_of(chat)["message"] == "model 'emb' serves embedding, not text-generation"
