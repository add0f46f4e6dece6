"""Rate limits at the HTTP edge: requests and tokens per key and per model, 429 with
Retry-After and OpenAI's x-ratelimit-* headers, tokens charged from what the engine used."""

from __future__ import annotations

import httpx
from test_app import CHAT_URL, chat_body

KEY_A = "r4te-Limit-Key-A-7QzWx2"
KEY_B = "r4te-Limit-Key-B-8PyVu3"


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def embed(client: httpx.AsyncClient, key: str | None = None, model: str = "emb",
          path: str = "/v1/embeddings"):
    body = {"model": model, "input": "hello world"} if path.startswith("/v1") else \
        {"model": model, "inputs": "hello world"}
    return client.post(path, json=body, headers=bearer(key) if key else {})


async def test_requests_per_key_run_out_with_openai_headers(start) -> None:
    keys = [{"id": "a", "key": KEY_A, "rpm": 3}, {"id": "b", "key": KEY_B}]
    async with start(keys=keys) as srv:
        await srv.wait_ready()
        answers = [await embed(srv.client, KEY_A) for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
        assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
        denied = await embed(srv.client, KEY_A)
        assert denied.status_code == 429
        error = denied.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
        assert 1 <= int(denied.headers["retry-after"]) <= 20     # one request refills in 20 s
        assert denied.headers["x-ratelimit-remaining-requests"] == "0"
        assert denied.headers["x-ratelimit-reset-requests"].endswith("s")
        # TEI's route answers in TEI's body; another key has its own (no) limit.
        tei = await embed(srv.client, KEY_A, path="/embed")
        assert (tei.status_code, tei.json()["error_type"]) == (429, "Overloaded")
        assert "retry-after" in tei.headers
        assert (await embed(srv.client, KEY_B)).status_code == 200


async def test_a_model_limit_is_shared_by_every_caller(start, dirs) -> None:
    models = [{"source": str(dirs.emb), "name": "emb", "max_wait_ms": 0, "rpm": 2},
              {"source": str(dirs.gen), "name": "gen"}]
    keys = [{"id": "a", "key": KEY_A}, {"id": "b", "key": KEY_B}]
    async with start(models=models, keys=keys) as srv:
        await srv.wait_ready()
        assert (await embed(srv.client, KEY_A)).status_code == 200
        assert (await embed(srv.client, KEY_B)).status_code == 200
        denied = await embed(srv.client, KEY_A)
        assert denied.status_code == 429
        assert denied.headers["x-ratelimit-limit-requests"] == "2"
        chat = await srv.client.post(CHAT_URL, json=chat_body(), headers=bearer(KEY_A))
        assert chat.status_code == 200
        assert "x-ratelimit-limit-requests" not in chat.headers   # gen has no limit


async def test_tokens_are_charged_from_usage_streamed_or_not(start) -> None:
    async with start(rate_limit_tpm=60) as srv:
        await srv.wait_ready()
        first = await srv.client.post(CHAT_URL, json=chat_body())
        assert first.status_code == 200
        used = first.json()["usage"]["total_tokens"]
        assert first.headers["x-ratelimit-remaining-tokens"] == "60"  # charged after
        second = await srv.client.post(CHAT_URL, json=chat_body(stream=True))
        assert second.status_code == 200 and second.text.endswith("data: [DONE]\n\n")
        left = int(second.headers["x-ratelimit-remaining-tokens"])
        assert 60 - used - 1 <= left <= 60 - used            # refilled a little meanwhile
        third = await srv.client.post("/v1/embeddings", json={"model": "emb", "input": "hi"})
        left_after_stream = int(third.headers["x-ratelimit-remaining-tokens"])
        assert left_after_stream <= left - used + 1           # the stream was charged at its end
        # Spend what is left, then a request waits until a token has refilled.
        for _ in range(10):
            got = await srv.client.post(CHAT_URL, json=chat_body())
            if got.status_code == 429:
                break
        assert got.status_code == 429
        assert got.headers["x-ratelimit-remaining-tokens"] == "0"
        assert int(got.headers["retry-after"]) >= 1


async def test_without_limits_there_are_no_rate_headers(server) -> None:
    got = await server.client.post("/v1/embeddings", json={"model": "emb", "input": "hi"})
    assert got.status_code == 200
    assert not [h for h in got.headers if h.startswith("x-ratelimit")]
