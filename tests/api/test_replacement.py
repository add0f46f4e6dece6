"""Placement through the app: a GPU that runs out of memory while serving hands the model to
the next device, and the client is told to retry rather than given a wrong answer."""

from __future__ import annotations

import fakes
import pytest

from hfserve.hardware import Device
from hfserve.runtime.lifecycle import placement

GIB = 2**30


@pytest.fixture
def gpu_machine(monkeypatch):
    devices = [
        Device(kind="cuda", index=0, name="Fake GPU", memory_total=16 * GIB,
               memory_free=16 * GIB, dtypes=("float32", "bfloat16", "float16")),
        Device(kind="cpu", index=None, name="Fake CPU", memory_total=64 * GIB,
               memory_free=60 * GIB, dtypes=("float32",)),
    ]
    monkeypatch.setattr(placement, "detect", lambda: devices)
    return devices


async def test_out_of_memory_moves_the_model_and_the_retry_succeeds(start, dirs, gpu_machine):
    async with start(models=[{"source": str(dirs.emb), "name": "emb", "max_wait_ms": 0}]) as srv:
        await srv.wait_ready()
        info = (await srv.client.get("/v1/models/emb")).json()
        assert info["device"] == "cuda:0" and info["dtype"] == "bfloat16"

        failed = await srv.client.post("/v1/embeddings", json={"model": "emb",
                                                               "input": fakes.OOM})
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "device_out_of_memory"
        assert int(failed.headers["retry-after"]) >= 1

        await srv.wait_ready()
        moved = (await srv.client.get("/v1/models/emb")).json()
        assert moved["device"] == "cpu"
        assert moved["placement_attempts"][0]["device"] == "cuda:0"
        assert "out of memory" in moved["placement_attempts"][0]["error"]

        retry = await srv.client.post("/v1/embeddings", json={"model": "emb",
                                                              "input": fakes.OOM})
        assert retry.status_code == 200
        assert retry.json()["data"][0]["embedding"] == pytest.approx(
            fakes.embed(fakes.OOM).tolist())


async def test_explicit_device_that_is_absent_fails_the_model_clearly(start, dirs):
    models = [{"source": str(dirs.emb), "name": "emb", "device": "cuda"}]
    with pytest.raises(Exception, match="emb.*cuda.*not present"):
        async with start(models=models):
            pass
    async with start(models=models, skip_unservable_models=True) as srv:
        r = await srv.client.post("/v1/embeddings", json={"model": "emb", "input": "hi"})
        assert r.status_code == 503
        assert "cuda" in r.json()["error"]["message"]
        info = (await srv.client.get("/v1/models/emb")).json()
        assert info["state"] == "failed"


async def test_hardware_route_lists_devices_and_compatibility(server):
    body = (await server.client.get("/v1/hardware")).json()
    kinds = [d["kind"] for d in body["devices"]]
    assert kinds[-1] == "cpu"
    assert body["compatibility"]["vision-language"]["openvino"] == "none"
    assert set(body["unavailable"]) <= {"cuda", "rocm", "mps", "openvino", "qnn", "cpu"}
    assert [row["kind"] for row in body["absent"]] == list(body["unavailable"])
    assert all(row["cause"] and row["reason"] for row in body["absent"])


async def test_a_small_gpu_budget_places_the_model_on_the_cpu(start, dirs, gpu_machine):
    models = [{"source": str(dirs.emb), "name": "emb", "max_wait_ms": 0}]
    async with start(models=models, memory_limits={"cuda:0": "1KiB"}) as srv:
        await srv.wait_ready()
        info = (await srv.client.get("/v1/models/emb")).json()
        assert info["device"] == "cpu"
        assert info["placement_reason"] == "fallback"
        r = await srv.client.post("/v1/embeddings", json={"model": "emb", "input": "hi"})
        assert r.status_code == 200


async def test_a_budget_that_fits_keeps_the_gpu(start, dirs, gpu_machine):
    models = [{"source": str(dirs.emb), "name": "emb", "max_wait_ms": 0}]
    async with start(models=models, memory_limits={"cuda:0": "1GiB"}) as srv:
        await srv.wait_ready()
        assert (await srv.client.get("/v1/models/emb")).json()["device"] == "cuda:0"
