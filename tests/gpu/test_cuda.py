"""Both demo models on CUDA in half precision, answering correctly, and a GPU memory budget
that is too small moving a model to the CPU."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import pytest_asyncio

from hfserve.api.app import create_app
from hfserve.config import Settings

from .conftest import MINILM, SMOL

# One app for the module (loading three models takes a minute), on the session's loop.
pytestmark = [pytest.mark.gpu, pytest.mark.asyncio(loop_scope="session")]

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France."]


async def _serve(models, tmp_path, **settings):
    app = create_app(Settings(models=models, cache_dir=tmp_path / "cache", **settings))
    return app


async def _ready(client: httpx.AsyncClient) -> None:
    import asyncio

    for _ in range(600):
        if (await client.get("/ready")).status_code == 200:
            return
        await asyncio.sleep(0.5)
    raise AssertionError("models did not load")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cuda_server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cuda")
    models = [{"name": "minilm", "source": str(MINILM), "device": "cuda", "dtype": "float16"},
              {"name": "smol", "source": str(SMOL), "device": "cuda", "dtype": "bfloat16"},
              {"name": "minilm-cpu", "source": str(MINILM), "device": "cpu",
               "backend": "torch"}]
    app = await _serve(models, tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://gpu", timeout=300) as client:
        await _ready(client)
        yield client


async def test_models_load_on_cuda_in_half_precision(cuda_server):
    for name, dtype in (("minilm", "float16"), ("smol", "bfloat16")):
        info = (await cuda_server.get(f"/v1/models/{name}")).json()
        assert info["device"].startswith("cuda:"), info
        assert info["dtype"] == dtype


async def test_fp16_embeddings_match_the_cpu(cuda_server):
    def vectors(r):
        return np.asarray([d["embedding"] for d in r.json()["data"]])

    gpu = vectors(await cuda_server.post("/v1/embeddings",
                                         json={"model": "minilm", "input": SENTENCES}))
    cpu = vectors(await cuda_server.post("/v1/embeddings",
                                         json={"model": "minilm-cpu", "input": SENTENCES}))
    cos = (gpu * cpu).sum(1) / (np.linalg.norm(gpu, axis=1) * np.linalg.norm(cpu, axis=1))
    assert cos.min() >= 0.999


async def test_bf16_chat_answers_paris(cuda_server):
    r = await cuda_server.post("/v1/chat/completions", json={
        "model": "smol", "temperature": 0, "max_tokens": 24,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]})
    assert "Paris" in r.json()["choices"][0]["message"]["content"]


async def test_small_gpu_budget_falls_back_to_cpu(tmp_path):
    models = [{"name": "smol", "source": str(SMOL), "backend": "torch"}]
    app = await _serve(models, tmp_path, memory_limits={"cuda": "16MiB"})
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://gpu", timeout=300) as client:
        await _ready(client)
        info = (await client.get("/v1/models/smol")).json()
        assert info["device"] == "cpu"
