"""Every error class through the real server and SDK; the server survives each one."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from .conftest import CHAT, EMBED, MAX_BODY, TINY_QUEUE

HI = [{"role": "user", "content": "hi"}]


def assert_envelope(body: dict) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    text = json.dumps(body)
    assert "Traceback" not in text and "/tmp/" not in text and "/work/" not in text


def good_request_still_works(client) -> None:
    reply = client.chat.completions.create(model=CHAT, messages=HI, temperature=0,
                                           max_tokens=2)
    assert reply.choices[0].message.content


def test_503_while_loading(server):
    early = server["early"]
    assert early is not None and early.status_code == 503
    assert int(early.headers["retry-after"]) >= 1
    assert_envelope(early.json())


@pytest.mark.parametrize("kwargs, param", [
    ({"temperature": -1}, "temperature"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"max_tokens": 100_000}, "max_tokens"),
    ({"n": 0}, "n"),
    ({"messages": []}, "messages"),
])
def test_invalid_sampling_is_400(client, kwargs, param):
    args = {"model": CHAT, "messages": HI, **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**args)
    assert_envelope(err.value.body if "error" in err.value.body else {"error": err.value.body})
    assert err.value.body["param"] == param
    good_request_still_works(client)


def test_context_overflow_code(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CHAT, messages=HI, max_tokens=100_000)
    assert err.value.body["code"] == "context_length_exceeded"


def test_nan_and_unknown_fields_are_400(http, client):
    raw = f'{{"model": "{CHAT}", "messages": [{{"role": "user", "content": "hi"}}], ' \
          '"temperature": NaN}'
    r = http.post("/v1/chat/completions", content=raw,
                  headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    assert_envelope(r.json())
    r = http.post("/v1/chat/completions", json={"model": CHAT, "messages": HI,
                                                "temprature": 0.5})
    assert r.status_code == 400 and "temprature" in r.json()["error"]["message"]
    r = http.post("/v1/chat/completions", content="{not json",
                  headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert_envelope(r.json())
    good_request_still_works(client)


def test_unknown_model_and_wrong_task(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="missing", messages=HI)
    assert err.value.status_code == 404
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=EMBED, messages=HI)
    assert err.value.body["code"] == "unsupported_task"


def test_unknown_route_is_enveloped(http):
    r = http.get("/v1/nothing-here")
    assert r.status_code == 404
    assert_envelope(r.json())


def test_oversized_body_is_413(http, client):
    r = http.post("/v1/embeddings", json={"model": EMBED, "input": "x" * (MAX_BODY + 10)})
    assert r.status_code == 413
    assert_envelope(r.json())
    good_request_still_works(client)


async def test_full_queue_is_429_with_retry_after(server):
    async with httpx.AsyncClient(base_url=server["base"], timeout=120) as c:
        body = {"model": TINY_QUEUE, "input": ["a long enough sentence to take a while"] * 1}
        results = await asyncio.gather(*(c.post("/v1/embeddings", json=body)
                                         for _ in range(24)))
    codes = [r.status_code for r in results]
    assert 429 in codes and 200 in codes
    refused = next(r for r in results if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"


def test_disconnect_stops_generation(server, client, http):
    with httpx.stream("POST", f"{server['base']}/v1/chat/completions", timeout=60, json={
            "model": CHAT, "messages": HI, "max_tokens": 4000, "stream": True,
            "ignore_eos": True}) as r:
        lines = 0
        for line in r.iter_lines():
            lines += bool(line)
            if lines >= 3:
                break
    for _ in range(100):
        metrics = http.get("/metrics").text
        running = [line for line in metrics.splitlines()
                   if line.startswith(f'hfserve_running_sequences{{model="{CHAT}"}}')]
        if running and float(running[0].split()[-1]) == 0:
            break
        import time

        time.sleep(0.1)
    else:
        pytest.fail("generation kept running after the client left")
    good_request_still_works(client)


def test_token_ids_outside_the_vocabulary_are_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=CHAT, prompt=[1, 2, 10_000_000], max_tokens=2)
    assert err.value.body["param"] == "prompt" and "vocabulary" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=EMBED, input=[[5, -3]], encoding_format="float")
    good_request_still_works(client)
