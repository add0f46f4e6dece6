"""The response cache in the engine, seen from the routes: hits never reach the batcher, a
partly cached request runs only its misses (in one batch, results in order), no caller can
change a cached result, and a cached answer is checked as an uncached one is."""

from __future__ import annotations

import fakes
import numpy as np
import pytest

from hfserve.types import Task

pytestmark = pytest.mark.asyncio(loop_scope="function")


def batches_since(mark: int) -> list[list[str]]:
    return fakes.CONTROL.batches[mark:]


async def embed(server, texts, **fields):
    response = await server.client.post("/v1/embeddings", headers=fields.pop("headers", None),
                                        json={"model": "emb", "input": texts, **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_repeated_request_never_reaches_the_batcher(server) -> None:
    mark = len(fakes.CONTROL.batches)
    first = await embed(server, ["alpha beta", "gamma"])
    assert batches_since(mark) == [["alpha beta", "gamma"]]
    second = await embed(server, ["alpha beta", "gamma"])
    assert batches_since(mark) == [["alpha beta", "gamma"]]
    assert second == first
    assert second["usage"]["prompt_tokens"] == 3


async def test_only_the_misses_run_and_results_keep_their_order(server) -> None:
    alone = (await embed(server, ["one", "three"]))["data"]
    mark = len(fakes.CONTROL.batches)
    mixed = (await embed(server, ["zero", "one", "two", "three"]))["data"]
    assert batches_since(mark) == [["zero", "two"]]
    assert [d["embedding"] for d in mixed[1::2]] == [d["embedding"] for d in alone]
    assert mixed[0]["embedding"] == (await embed(server, ["zero"]))["data"][0]["embedding"]


async def test_an_input_repeated_within_a_request_runs_once(server) -> None:
    mark = len(fakes.CONTROL.batches)
    data = (await embed(server, ["twice over", "once", "twice over"]))["data"]
    assert batches_since(mark) == [["twice over", "once"]]
    assert data[0]["embedding"] == data[2]["embedding"] != data[1]["embedding"]
    assert [d["index"] for d in data] == [0, 1, 2]


async def test_without_the_cache_a_repeated_input_runs_each_time(server) -> None:
    mark = len(fakes.CONTROL.batches)
    await embed(server, ["no dedup", "no dedup"], headers={"Cache-Control": "no-store"})
    assert batches_since(mark) == [["no dedup", "no dedup"]]


async def test_no_cache_runs_every_input(server) -> None:
    await embed(server, ["seen"])
    mark = len(fakes.CONTROL.batches)
    await embed(server, ["seen"], headers={"Cache-Control": "no-cache"})
    assert batches_since(mark) == [["seen"]]


async def test_a_cached_result_cannot_be_changed_by_its_caller(server) -> None:
    first = await server.engine.run("emb", Task.EMBEDDING, ["mutable"])
    again = await server.engine.run("emb", Task.EMBEDDING, ["mutable"])
    assert not again.results[0].flags.writeable
    with pytest.raises(ValueError):
        again.results[0][0] = 42.0
    first.results[0][...] = 42.0                  # the caller's own copy
    third = await server.engine.run("emb", Task.EMBEDDING, ["mutable"])
    assert np.array_equal(third.results[0], again.results[0])
    assert third.results[0][0] != 42.0


async def test_a_fully_cached_request_is_still_validated(server) -> None:
    await embed(server, ["valid"])
    response = await server.client.post("/v1/embeddings", json={
        "model": "emb", "input": ["valid"], "priority": "urgent"})
    assert response.status_code == 400


async def test_zero_bytes_turns_the_cache_off(start, dirs) -> None:
    async with start(response_cache_bytes=0) as srv:
        await srv.wait_ready()
        mark = len(fakes.CONTROL.batches)
        for _ in range(2):
            await embed(srv, ["again"])
        assert batches_since(mark) == [["again"], ["again"]]
