"""Model groups and replicas end to end: MiniLM served under two names, grouped for Thompson
sampling and for a fixed split; a group's response names the model that served it, feedback
reaches that model's posterior, and /v1/groups and /v1/models show the groups. And MiniLM
served as two CPU replicas under one name, both serving under concurrent clients."""

from __future__ import annotations

import asyncio
import re

import httpx
import openai
import pytest

from .conftest import MINILM, launch, stop

A, B = "minilm-a", "minilm-b"
GROUP, SPLIT = "embedders", "embed-ab"
PAIR = "minilm-pair"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("groups")
    model = {"source": str(MINILM), "threads": 1, "backend": "torch"}
    config = {"cache_dir": str(tmp / "cache"),
              "models": [{**model, "name": A}, {**model, "name": B},
                         {"source": str(MINILM), "backend": "torch", "name": PAIR,
                          "replicas": 2}],
              "groups": [{"name": GROUP, "task": "embedding", "models": [A, B],
                          "latency_target_ms": 60000},
                         {"name": SPLIT, "task": "embedding", "models": [A, B],
                          "weights": {A: 1, B: 0}}]}
    proc, url, log = launch(config, tmp)
    yield url
    stop(proc, log)


@pytest.fixture(scope="module")
def client(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused")


def test_a_group_request_is_served_by_an_arm_that_the_response_names(client) -> None:
    raw = client.embeddings.with_raw_response.create(model=GROUP, input="hello there")
    response = raw.parse()
    assert response.model in (A, B)
    assert raw.headers["x-hfserve-model"] == response.model
    assert len(response.data[0].embedding) == 384


def test_auto_means_the_group_of_the_route_task(client) -> None:
    raw = client.embeddings.with_raw_response.create(model="auto", input="auto picks")
    assert raw.parse().model in (A, B)
    assert raw.headers["x-hfserve-model"] == raw.parse().model


def test_a_model_named_directly_says_so_too(client) -> None:
    raw = client.embeddings.with_raw_response.create(model=B, input="direct")
    assert raw.headers["x-hfserve-model"] == B == raw.parse().model


def test_a_static_split_sends_nothing_to_a_zero_weight(client, base) -> None:
    served = {client.embeddings.create(model=SPLIT, input=f"split {i}").model
              for i in range(8)}
    assert served == {A}
    group = httpx.get(f"{base}/v1/groups/{SPLIT}").json()
    assert group["policy"] == "weighted"
    arms = {arm["model"]: arm for arm in group["arms"]}
    assert arms[A]["requests"] >= 8 and arms[B]["requests"] == 0
    assert arms[A]["share"] == 1.0


def test_feedback_reaches_the_posterior_of_the_arm_that_served(client, base) -> None:
    raw = client.embeddings.with_raw_response.create(model=GROUP, input="judge me")
    served = raw.parse().model
    before = {a["model"]: a for a in httpx.get(f"{base}/v1/groups/{GROUP}").json()["arms"]}
    answer = httpx.post(f"{base}/v1/feedback",
                        json={"id": raw.headers["x-request-id"], "score": 0})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == served and answer.json()["group"] == GROUP
    after = {a["model"]: a for a in httpx.get(f"{base}/v1/groups/{GROUP}").json()["arms"]}
    assert after[served]["beta"] == before[served]["beta"] + 1
    assert after[served]["alpha"] == before[served]["alpha"]


def test_group_traffic_is_counted_per_arm(client, base) -> None:
    before = sum(a["requests"] for a in httpx.get(f"{base}/v1/groups/{GROUP}").json()["arms"])
    for i in range(6):
        client.embeddings.create(model=GROUP, input=f"count {i}")
    group = httpx.get(f"{base}/v1/groups/{GROUP}").json()
    assert group["policy"] == "thompson" and group["task"] == "embedding"
    assert sum(a["requests"] for a in group["arms"]) == before + 6
    assert sum(a["share"] for a in group["arms"]) == pytest.approx(1.0)
    # every request succeeded within the latency target (reward 1), and feedback here
    # only ever scored 0: alpha is the prior plus the requests
    for arm in group["arms"]:
        assert arm["alpha"] == pytest.approx(1 + arm["requests"])


def test_bad_feedback_and_unknown_groups_are_openai_errors(base) -> None:
    unknown = httpx.post(f"{base}/v1/feedback", json={"id": "no-such-response", "score": 1})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "response_not_found"
    out_of_range = httpx.post(f"{base}/v1/feedback", json={"id": "x", "score": 2})
    assert out_of_range.status_code == 400
    assert httpx.get(f"{base}/v1/groups/nope").status_code == 404


def test_models_lists_the_groups_beside_the_models(client) -> None:
    listed = {m.id: m for m in client.models.list().data}
    assert {A, B, GROUP, SPLIT} <= set(listed)
    group = listed[GROUP].model_dump()
    assert group["group"] is True and group["models"] == [A, B]
    assert group["tasks"] == ["embedding"]
    assert client.models.retrieve(GROUP).id == GROUP


def test_two_replicas_both_serve_concurrent_clients(base) -> None:
    async def clients() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            return await asyncio.gather(*(
                http.post("/v1/embeddings", json={"model": PAIR, "input": f"client {i}"})
                for i in range(32)))

    answers = asyncio.run(clients())
    assert [a.status_code for a in answers] == [200] * 32
    assert {a.json()["model"] for a in answers} == {PAIR}
    assert {a.headers["x-hfserve-replica"] for a in answers} <= {f"{PAIR}@0", f"{PAIR}@1"}
    metrics = httpx.get(f"{base}/metrics").text
    served = {m[1]: float(m[2]) for m in re.finditer(
        r'hfserve_replica_requests_total\{model="minilm-pair",replica="([^"]+)"\} (\S+)',
        metrics)}
    assert set(served) == {f"{PAIR}@0", f"{PAIR}@1"}, served
    assert all(count > 0 for count in served.values()), served
    assert sum(served.values()) >= 32


def test_replicas_are_listed_as_models_of_their_own(client) -> None:
    listed = {m.id: m.model_dump() for m in client.models.list().data}
    assert listed[f"{PAIR}@0"]["replica_of"] == PAIR == listed[f"{PAIR}@1"]["replica_of"]


def test_a_replica_taken_out_under_load_leaves_every_request_answered(base) -> None:
    """Replica 1 is unloaded while 32 clients keep sending: requests go to replica 0 (and
    any that met replica 1 unloading are answered by replica 0)."""
    async def run() -> tuple[list[int], httpx.Response]:
        started = asyncio.Event()
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            async def client(i: int) -> list[int]:
                codes = []
                for j in range(3):
                    answer = await http.post("/v1/embeddings", json={
                        "model": PAIR, "input": f"under load {i} {j}"})
                    codes.append(answer.status_code)
                    started.set()
                return codes

            async def take_out() -> httpx.Response:
                await started.wait()
                return await http.post(f"/v1/models/{PAIR}@1/unload")

            *codes, unloaded = await asyncio.gather(*(client(i) for i in range(32)),
                                                    take_out())
        return [c for cs in codes for c in cs], unloaded

    codes, unloaded = asyncio.run(run())
    assert unloaded.status_code == 200, unloaded.text
    assert codes == [200] * 96
