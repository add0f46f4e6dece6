"""Single hostile requests against the real server and real models (torch and OpenVINO in a
model process): each a clear 4xx in OpenAI's envelope, and the server serves on."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from .conftest import CHAT, CHAT_OV, EMBED
from .test_errors import HI, assert_envelope, good_request_still_works

CHATS = [CHAT, CHAT_OV]


def post_raw(http: httpx.Client, url: str, body: dict) -> httpx.Response:
    """JSON with non-ASCII escaped, so a lone surrogate travels as ``\\ud800``."""
    return http.post(url, content=json.dumps(body).encode(),
                     headers={"content-type": "application/json"})


def test_a_request_template_bomb_is_refused_and_never_stalls_the_server(http):
    bomb = {"model": CHAT, "messages": HI, "max_tokens": 2,
            "chat_template_kwargs": {"chat_template": "{{ 'hello ' * 2000000 }}"}}
    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.extend(
        http.post("/v1/chat/completions", json=bomb) for _ in range(4)))
    sender.start()
    health = [http.get("/health").status_code for _ in range(20)]
    sender.join()
    assert health == [200] * 20
    assert [a.status_code for a in answers] == [400] * 4
    error = answers[0].json()["error"]
    assert error["param"] == "chat_template_kwargs.chat_template"
    assert_envelope(answers[0].json())


def test_a_reserved_template_kwarg_is_refused_and_a_harmless_one_changes_nothing(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CHAT, messages=HI, max_tokens=2,
                                       extra_body={"chat_template_kwargs": {"tokenize": True}})
    assert err.value.body["param"] == "chat_template_kwargs.tokenize"
    plain = client.chat.completions.create(model=CHAT, messages=HI, max_tokens=6,
                                           temperature=0)
    extra = client.chat.completions.create(
        model=CHAT, messages=HI, max_tokens=6, temperature=0,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert extra.choices[0].message.content == plain.choices[0].message.content


@pytest.mark.parametrize("model", CHATS)
def test_seed_minus_one_is_a_random_seed(client, model):
    reply = client.chat.completions.create(model=model, messages=HI, max_tokens=4, seed=-1)
    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens >= 1


@pytest.mark.parametrize("model", CHATS)
@pytest.mark.parametrize(("extra", "param"), [
    ({"seed": 2**64}, "seed"), ({"top_k": 2**64}, "top_k"),
    ({"stop_token_ids": [-1]}, "stop_token_ids.0"),
    ({"stop_token_ids": [2**70]}, "stop_token_ids.0"),
    ({"stop_token_ids": [10_000_000]}, "stop_token_ids"),
])
def test_out_of_range_sampling_values_are_400s_that_show_no_internals(http, client, model,
                                                                      extra, param):
    response = http.post("/v1/chat/completions",
                         json={"model": model, "messages": HI, "max_tokens": 2, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert_envelope(response.json())
    assert "0x" not in response.text and "pybind" not in response.text
    good_request_still_works(client)


@pytest.mark.parametrize(("url", "body", "param"), [
    ("/v1/chat/completions", {"model": CHAT, "messages": [
        {"role": "user", "content": "a\ud800b"}]}, "messages"),
    ("/v1/chat/completions", {"model": CHAT_OV, "messages": [
        {"role": "user", "content": "a\ud800b"}]}, "messages"),
    ("/v1/completions", {"model": CHAT, "prompt": "a\ud800b"}, "prompt"),
    ("/v1/embeddings", {"model": EMBED, "input": "a\ud800b"}, "input"),
])
def test_a_lone_surrogate_is_a_400_and_the_connection_lives_on(server, url, body, param):
    with httpx.Client(base_url=server["base"], timeout=60) as http:
        response = post_raw(http, url, body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
        after = http.post("/v1/embeddings", json={"model": EMBED, "input": "hi"})
        assert after.status_code == 200
        assert response.headers.get("connection") != "close"
    assert "Traceback" not in server["log"].read_text()


def completion_tokens(http: httpx.Client, model: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'hfserve_tokens_total{{kind="completion",model="{model}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_non_streamed_chat_stops_when_its_client_leaves(server, http, client):
    body = {"model": CHAT, "messages": HI, "max_tokens": 3000, "ignore_eos": True}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{server['base']}/v1/chat/completions", json=body, timeout=1.5)
    time.sleep(0.5)                       # the server sees the disconnect and aborts
    before = completion_tokens(http, CHAT)
    time.sleep(1.5)
    assert completion_tokens(http, CHAT) - before <= 4
    good_request_still_works(client)


def test_a_prompt_list_longer_than_the_limit_is_a_400_and_runs_nothing(client, http):
    before = completion_tokens(http, CHAT)
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=CHAT, prompt=["x"] * 1100, max_tokens=4)
    assert err.value.body["code"] == "too_many_sequences"
    assert completion_tokens(http, CHAT) == before
    good_request_still_works(client)


def test_too_many_embedding_inputs_is_a_400_not_a_429(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=EMBED, input=["a"] * 5000)
    assert err.value.body["code"] == "too_many_inputs"


def test_embeddings_of_the_chat_model_is_a_400_naming_what_it_serves(client, http):
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=CHAT, input="hi")
    assert err.value.body["code"] == "unsupported_task"
    assert "serves text-generation" in err.value.body["message"]
    assert http.get(f"/v1/models/{CHAT}").json()["tasks"] == ["text-generation"]
