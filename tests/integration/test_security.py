"""Keys and shared rate limits on real servers: a real redis-server, two hfserve processes on
it serving the real MiniLM model, the openai SDK and httpx as clients."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import EMBED, MINILM, _free_port, launch, stop

pytestmark = pytest.mark.integration

KEY = "int3gration-Key-Shared-9Qx"
OTHER = "int3gration-Key-Other-4Lm"
RPM = 5


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server missing: apt-get install -y redis-server")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(redis_url, tmp_path_factory):
    if not MINILM.exists():
        pytest.fail("demo models missing: run `make models`")
    config = {
        "rate_limit_store": redis_url,
        "keys": [{"id": "shared", "key": KEY, "rpm": RPM},
                 {"id": "other", "key": OTHER, "models": ["nothing-served"]}],
        "models": [{"name": EMBED, "source": str(MINILM), "threads": 1, "backend": "torch"}],
    }
    started = []
    try:
        for name in ("one", "two"):
            tmp = tmp_path_factory.mktemp(name)
            config["cache_dir"] = str(tmp / "cache")
            proc, base, log = launch(config, tmp)
            started.append((proc, base, log, tmp))
        yield [base for _, base, _, _ in started]
    finally:
        for proc, _, log, _ in started:
            stop(proc, log)
        for *_, tmp in started:
            assert KEY not in (tmp / "server.log").read_text()


def test_two_servers_share_one_limit(servers) -> None:
    from openai import OpenAI, RateLimitError

    clients = [OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=60)
               for base in servers]
    remaining = []
    for i in range(RPM):                       # alternate between the two servers
        raw = clients[i % 2].embeddings.with_raw_response.create(model=EMBED, input="hello")
        assert len(raw.parse().data[0].embedding) == 384
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [4, 3, 2, 1, 0]
    for client in clients:                     # the 6th on either one
        with pytest.raises(RateLimitError) as caught:
            client.embeddings.create(model=EMBED, input="hello")
        headers = caught.value.response.headers
        assert int(headers["retry-after"]) >= 1
        assert headers["x-ratelimit-limit-requests"] == str(RPM)
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-reset-requests"].endswith("s")
        assert caught.value.body["code"] == "rate_limit_exceeded"


def test_keys_on_a_real_server(servers) -> None:
    from openai import AuthenticationError, OpenAI, PermissionDeniedError

    base = servers[0]
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{base}/v1", api_key="wr0ng-Key-Not-Configured-1", max_retries=0
               ).embeddings.create(model=EMBED, input="x")
    with pytest.raises(PermissionDeniedError):
        OpenAI(base_url=f"{base}/v1", api_key=OTHER, max_retries=0
               ).embeddings.create(model=EMBED, input="x")
    tei = httpx.post(f"{base}/embed", json={"inputs": "x"}, timeout=30)
    assert (tei.status_code, tei.json()["error_type"]) == (401, "Unauthorized")
    query = httpx.get(f"{base}/v1/models", params={"api_key": KEY}, timeout=30)
    assert query.status_code == 401
    admin = httpx.post(f"{base}/v1/models/{EMBED}/unload", headers={"x-api-key": KEY},
                       timeout=30)
    assert admin.status_code == 403 and admin.json()["error"]["type"] == "permission_error"
    assert httpx.get(f"{base}/health", timeout=30).status_code == 200
    rebound = httpx.post(f"{base}/v1/embeddings", json={"model": EMBED, "input": "x"},
                         headers={"host": "attacker.example", "x-api-key": OTHER}, timeout=30)
    assert rebound.status_code == 403


def test_redis_and_memory_stores_agree(redis_url) -> None:
    from hfserve.security.ratelimit import REQUESTS, TOKENS, Check, MemoryStore
    from hfserve.security.redis_store import RedisStore

    async def run(store) -> list:
        req = Check(f"t:{id(store)}:r", REQUESTS, 3, window_s=3600)
        tok = Check(f"t:{id(store)}:t", TOKENS, 100, window_s=3600)
        seen = []
        for _ in range(4):
            out = await store.take([req, tok])
            seen.append((out.allowed, [round(v) for v in out.levels]))
        await store.charge([tok], 150)
        lonely = Check(f"t:{id(store)}:r2", REQUESTS, 10, window_s=3600)
        out = await store.take([lonely, tok])                # tokens in debt: nothing taken
        seen.append((out.allowed, [round(v) for v in out.levels]))
        await store.close()
        return seen

    memory = asyncio.run(run(MemoryStore()))
    shared = asyncio.run(run(RedisStore(redis_url)))
    assert memory == shared == [(True, [2, 100]), (True, [1, 100]), (True, [0, 100]),
                                (False, [0, 100]), (False, [10, -50])]


def test_serve_refuses_the_network_without_keys(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "hfserve", "serve", str(MINILM), "--host",
                           "0.0.0.0", "--port", str(_free_port())], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "refusing to serve admin routes on 0.0.0.0" in done.stderr
