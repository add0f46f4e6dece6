"""The same models on OpenVINO and ONNX Runtime, chosen automatically or by config, and the
fallback to eager torch when the first-choice backend fails."""

from __future__ import annotations

import asyncio

import numpy as np
import openvino  # noqa: F401 - the extra this module tests must be installed
import pytest

from .conftest import (
    CHAT,
    CHAT_OV,
    CHAT_SLOTS,
    EMBED,
    EMBED_FALLBACK,
    EMBED_ONNX,
    EMBED_OV,
    EMBED_STREAMS,
    MINILM,
)

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France.",
             "Embeddings map text to vectors.", "short"]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MINILM), device="cpu").encode(SENTENCES)


def cosines(a, b) -> list[float]:
    a, b = np.asarray(a), np.asarray(b)
    return list((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


def embed(client, model):
    got = client.embeddings.create(model=model, input=SENTENCES, encoding_format="float")
    return [d.embedding for d in got.data]


def test_automatic_placement_picks_openvino(http):
    info = http.get(f"/v1/models/{EMBED_OV}").json()
    assert info["backend"] == "openvino" and info["device"] == "openvino:CPU"
    assert info["placement_attempts"] == []
    chat = http.get(f"/v1/models/{CHAT_OV}").json()
    assert chat["backend"] == "openvino", chat["placement_attempts"]
    assert http.get(f"/v1/models/{EMBED}").json()["backend"] == "torch"


@pytest.mark.parametrize("model", [EMBED_OV, EMBED_ONNX])
def test_backend_embeddings_match_sentence_transformers(client, reference, model):
    assert min(cosines(embed(client, model), reference)) >= 0.999


async def test_openvino_streams_embed_batches_side_by_side(http, aclient, reference):
    info = http.get(f"/v1/models/{EMBED_STREAMS}").json()
    assert info["backend"] == "openvino" and info["streams"] == 2
    # Batches of two sentences, many at once: both streams run, each on its own request.
    replies = await asyncio.gather(*(
        aclient.embeddings.create(model=EMBED_STREAMS, input=SENTENCES[i % 3:i % 3 + 2],
                                  encoding_format="float") for i in range(24)))
    for i, reply in enumerate(replies):
        got = [d.embedding for d in reply.data]
        assert min(cosines(got, reference[i % 3:i % 3 + 2])) >= 0.999


def test_onnx_backend_is_onnxruntime(http):
    info = http.get(f"/v1/models/{EMBED_ONNX}").json()
    assert info["backend"] == "onnxruntime" and info["device"] == "cpu"


def test_broken_first_choice_falls_back_to_torch(http, client, reference):
    info = http.get(f"/v1/models/{EMBED_FALLBACK}").json()
    assert info["state"] == "ready"
    assert info["backend"] == "torch" and info["device"] == "cpu"
    failed = info["placement_attempts"][0]
    assert failed["device"] == "openvino:CPU" and failed["backend"] == "openvino"
    assert failed["error"]
    assert min(cosines(embed(client, EMBED_FALLBACK), reference)) >= 0.999


def test_openvino_chat_answers_paris(client):
    reply = client.chat.completions.create(model=CHAT_OV, messages=QUESTION, temperature=0,
                                           max_tokens=24)
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens >= 5


@pytest.mark.parametrize("model", [CHAT, CHAT_SLOTS, CHAT_OV])
async def test_greedy_is_the_same_alone_and_in_a_busy_batch(aclient, model):
    prompts = [[{"role": "user", "content": f"Write a sentence about the number {i}."}]
               for i in range(8)]

    async def ask(messages):
        reply = await aclient.chat.completions.create(model=model, messages=messages,
                                                      temperature=0, max_tokens=24)
        return reply.choices[0].message.content

    alone = [await ask(p) for p in prompts[:3]]
    together = await asyncio.gather(*(ask(p) for p in prompts))
    assert together[:3] == alone


def test_openvino_stream_and_stop(client):
    chunks = list(client.chat.completions.create(
        model=CHAT_OV, messages=QUESTION, temperature=0, max_tokens=24, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text and chunks[-1].usage.completion_tokens >= 5
    # The stop string ends the text where it starts, and the usage with the token completing it.
    cut = client.chat.completions.create(model=CHAT_OV, messages=QUESTION, temperature=0,
                                         max_tokens=24, stop=["Paris"])
    assert cut.choices[0].message.content == text[:text.index("Paris")]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < chunks[-1].usage.completion_tokens
    streamed = list(client.chat.completions.create(
        model=CHAT_OV, messages=QUESTION, temperature=0, max_tokens=24, stop=["Paris"],
        stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
        cut.choices[0].message.content
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "stop"
    assert streamed[-1].usage.completion_tokens == cut.usage.completion_tokens


def test_characters_of_several_tokens_stream_whole_from_the_model_process(client):
    """The model runs in a process of its own and its text is made on the server's side:
    an emoji's bytes come as separate tokens, and the stream holds them back until the
    character is whole, giving the same text as the reply in one piece."""
    ask = {"model": CHAT_OV, "temperature": 0, "max_tokens": 40,
           "messages": [{"role": "user", "content": "List five emojis about food."}]}
    whole = client.chat.completions.create(**ask).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or ""
                       for c in client.chat.completions.create(**ask, stream=True)
                       if c.choices)
    assert streamed == whole
    assert any(ord(ch) > 0xFFFF for ch in whole)        # emoji: four UTF-8 bytes each


def test_a_model_in_its_own_process_reports_it_and_its_metrics(http, client):
    import time

    own = http.get(f"/v1/models/{CHAT_OV}").json()
    assert isinstance(own["process"], int) and own["process"] > 0
    assert http.get(f"/v1/models/{CHAT}").json().get("process") is None   # CPU: in-process

    def tokens() -> float:
        for line in http.get("/metrics").text.splitlines():
            if line.startswith("hfserve_tokens_total{") and f'model="{CHAT_OV}"' in line \
                    and 'kind="completion"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = tokens()
    reply = client.chat.completions.create(model=CHAT_OV, messages=QUESTION, temperature=0,
                                           max_tokens=8, extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == 8
    for _ in range(50):    # metric updates travel after the events
        if tokens() >= before + 8:
            break
        time.sleep(0.05)
    assert tokens() == before + 8



def test_loading_and_exporting_leave_the_server_log_readable(server, http):
    """No progress bars (weights, GGUF dequantization), no tracer warnings from the exports,
    and not optimum-intel's false alarm when offline: it looked the exported folder up as a
    hub id in the hub cache and logged a "No such file" error at every load of a model that
    then loaded as it should."""
    assert http.get(f"/v1/models/{EMBED_OV}").json()["backend"] == "openvino"
    assert http.get(f"/v1/models/{CHAT_OV}").json()["backend"] == "openvino"
    log = server["log"].read_text()
    assert "Could not infer whether the model was already converted" not in log
    assert "refs/main" not in log
    assert "TracerWarning" not in log
    assert "it/s]" not in log
