"""Model lifecycle on a real server with real models: MiniLM (pinned) and two tiny random
classifiers built here, under a CPU memory limit that holds two of the three; nothing
preloaded. Models load on their first request (concurrent first requests share one load),
leave in least-recently-used order when another needs the room (the pinned one never), and
answer correctly after every reload; the admin routes load, unload, register and delete
through httpx; a corrupt model opens its circuit breaker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys

import httpx
import numpy as np
import pytest

from .conftest import MINILM, check_clean, launch, stop
from .test_classify import LABELS, TEXTS, expected, tiny_classifier

SENTENCES = ["A cat sits on the mat.", "Stock markets fell sharply on Monday."]
OTHER = {0: "cold", 1: "warm", 2: "hot"}


def estimate(source) -> int:
    from hfserve.model_config import ModelConfig
    from hfserve.registry import build_spec
    from hfserve.runtime.lifecycle.footprint import estimate as bytes_of

    return bytes_of(build_spec(ModelConfig(source=str(source))), "float32")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle-models")
    found = {"a": tiny_classifier(root / "cls-a"),
             "b": tiny_classifier(root / "cls-b", labels=OTHER),
             "spare": tiny_classifier(root / "spare")}
    corrupt = root / "corrupt"
    corrupt.mkdir()
    for file in found["a"].iterdir():
        if file.is_file() and file.suffix != ".safetensors":
            (corrupt / file.name).write_bytes(file.read_bytes())
    # A well-formed file (it passes the checks before loading) whose classifier head has
    # the wrong shape for the config: the load itself fails, every time it is tried.
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(found["a"] / "model.safetensors"))
    head = next(k for k in tensors if k.startswith("classifier") and k.endswith("weight"))
    tensors[head] = tensors[head][:, :16].contiguous()
    save_file(tensors, str(corrupt / "model.safetensors"), metadata={"format": "pt"})
    found["corrupt"] = corrupt
    found["root"] = root
    return found


@pytest.fixture(scope="module")
def base(models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle-server")
    tiny = max(estimate(models["a"]), estimate(models["b"]))
    limit = estimate(MINILM) + tiny + tiny // 4          # two fit, three do not
    common = {"backend": "torch", "dtype": "float32", "threads": 1, "max_wait_ms": 0}
    config = {"cache_dir": str(tmp / "cache"), "preload": "none",
              "memory_limits": {"cpu": limit}, "model_roots": [str(models["root"])],
              "breaker_failures": 2, "breaker_open_s": 60, "models": [
                  {"name": "minilm", "source": str(MINILM), "pinned": True, **common},
                  {"name": "cls-a", "source": str(models["a"]), **common},
                  {"name": "cls-b", "source": str(models["b"]), **common},
                  {"name": "corrupt", "source": str(models["corrupt"]), **common}]}
    proc, url, log = launch(config, tmp)
    yield url
    stop(proc, log)


@pytest.fixture(scope="module")
def http(base):
    with httpx.Client(base_url=base, timeout=120, event_hooks={"response": [check_clean]}) as c:
        yield c


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MINILM), device="cpu").encode(SENTENCES)


def states(http) -> dict[str, str]:
    return {m["id"]: m["state"] for m in http.get("/v1/models").json()["data"]}


def metric(http, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.split()[-1])
    return 0.0


def cosine(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def check_embeddings(http, reference) -> None:
    got = http.post("/v1/embeddings", json={"model": "minilm", "input": SENTENCES})
    assert got.status_code == 200, got.text
    for item, ref in zip(got.json()["data"], reference, strict=True):
        assert cosine(item["embedding"], ref) >= 0.999


def check_classify(http, name: str, folder, labels: dict) -> None:
    got = http.post("/v1/classify", json={"model": name, "input": TEXTS})
    assert got.status_code == 200, got.text
    for row, scores in zip(got.json()["data"], expected(folder, TEXTS), strict=True):
        assert dict(zip(labels.values(), row["probs"], strict=True)) == \
            pytest.approx(scores, abs=1e-4)


def test_nothing_loads_at_start_and_first_requests_share_one_load(base, http, reference):
    assert http.get("/ready").status_code == 200
    assert set(states(http).values()) == {"unloaded"}

    async def first():
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            return await asyncio.gather(*(client.post("/v1/embeddings", json={
                "model": "minilm", "input": SENTENCES[i % 2]}) for i in range(6)))

    answers = asyncio.run(first())
    assert [a.status_code for a in answers] == [200] * 6
    assert metric(http, "hfserve_model_loads_total", model="minilm", outcome="ready") == 1
    check_embeddings(http, reference)
    card = http.get("/v1/models/minilm").json()
    assert card["state"] == "ready" and card["pinned"] is True
    assert card["resident_bytes"] > 0 and card["measured_bytes"] is not None
    assert metric(http, "hfserve_model_state", model="minilm", state="ready") == 1


def test_evictions_follow_lru_order_and_spare_the_pinned(http, models, reference):
    check_classify(http, "cls-a", models["a"], LABELS)
    assert states(http)["cls-a"] == "ready"
    # minilm was used least recently, but it is pinned: cls-a makes room.
    check_classify(http, "cls-b", models["b"], OTHER)
    assert {k: v for k, v in states(http).items() if k != "corrupt"} == \
        {"minilm": "ready", "cls-a": "unloaded", "cls-b": "ready"}
    assert metric(http, "hfserve_model_evictions_total", model="cls-a") == 1
    check_embeddings(http, reference)              # now cls-b is the least recent
    check_classify(http, "cls-a", models["a"], LABELS)
    assert {k: v for k, v in states(http).items() if k != "corrupt"} == \
        {"minilm": "ready", "cls-a": "ready", "cls-b": "unloaded"}
    assert metric(http, "hfserve_model_evictions_total", model="cls-b") == 1
    assert metric(http, "hfserve_model_evictions_total", model="minilm") == 0
    assert metric(http, "hfserve_model_loads_total", model="cls-a", outcome="ready") == 2
    assert metric(http, "hfserve_model_resident_bytes", model="cls-b") == 0
    assert metric(http, "hfserve_model_resident_bytes", model="cls-a") > 0


def test_32_concurrent_requests_across_the_three_get_no_5xx(base, http, models):
    async def burst():
        async with httpx.AsyncClient(base_url=base, timeout=300) as client:
            def one(i: int):
                if i % 3 == 0:
                    return client.post("/v1/embeddings", json={"model": "minilm",
                                                              "input": SENTENCES[0]})
                name = "cls-a" if i % 3 == 1 else "cls-b"
                return client.post("/v1/classify", json={"model": name, "input": TEXTS[0]})
            return await asyncio.gather(*(one(i) for i in range(32)))

    answers = asyncio.run(burst())
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers
                                                        if a.status_code >= 500][:3]
    assert sum(a.status_code == 200 for a in answers) >= 30
    assert states(http)["minilm"] == "ready"
    check_classify(http, "cls-b", models["b"], OTHER)


def test_admin_unload_and_load_with_progress_events(http, models):
    gone = http.post("/v1/models/cls-b/unload")
    assert gone.status_code == 200 and gone.json()["state"] == "unloaded"
    with http.stream("POST", "/v1/models/cls-b/load",
                     headers={"accept": "text/event-stream"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    phases = re.findall(r"^event: (\w+)$", text, flags=re.M)
    assert phases == ["resolving", "loading", "ready"]
    last = json.loads(text.strip().splitlines()[-1].removeprefix("data: "))
    assert last["model"] == "cls-b" and last["device"] == "cpu"
    assert states(http)["cls-b"] == "ready"
    check_classify(http, "cls-b", models["b"], OTHER)


def test_register_use_and_delete_a_model_under_the_roots(http, models):
    made = http.post("/v1/models", json={"id": "spare", "source": str(models["spare"]),
                                         "backend": "torch", "dtype": "float32"})
    assert made.status_code == 201, made.text
    assert made.json()["state"] == "unloaded"
    check_classify(http, "spare", models["spare"], LABELS)
    assert http.delete("/v1/models/spare").status_code == 204
    assert http.get("/v1/models/spare").status_code == 404
    assert "spare" not in states(http)


@pytest.mark.parametrize("source", ["{root}/../../etc", "/etc", "{root}/link"])
def test_register_refuses_paths_out_of_the_roots(http, models, source, tmp_path):
    link = models["root"] / "link"
    if not link.exists():
        link.symlink_to(tmp_path)
    r = http.post("/v1/models", json={"id": "evil", "source":
                                      source.format(root=models["root"])})
    assert r.status_code == 403
    assert r.json()["error"]["type"] == "permission_error"
    assert "evil" not in states(http)


def hfserve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hfserve", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_cli_ps_load_and_unload_call_the_running_server(base, http):
    gone = hfserve("unload", "cls-a", "--url", base)
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == "cls-a: unloaded"
    assert states(http)["cls-a"] == "unloaded"
    shown = hfserve("ps", "--url", base)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout.splitlines()
    lines = {name: next(line for line in out if name in line) for name in ("cls-a", "minilm")}
    assert "unloaded" in lines["cls-a"] and "ready" in lines["minilm"]
    loaded = hfserve("load", "cls-a", "--url", base)
    assert loaded.returncode == 0, loaded.stderr
    assert [line.split(":")[0] for line in loaded.stdout.splitlines()] == \
        ["resolving", "loading", "ready"]
    assert states(http)["cls-a"] == "ready"
    missing = hfserve("load", "no-such-model", "--url", base)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_a_corrupt_model_opens_its_breaker_and_then_fails_fast(http):
    for _ in range(2):
        r = http.post("/v1/classify", json={"model": "corrupt", "input": "hi"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_unavailable"
    loads = metric(http, "hfserve_model_loads_total", model="corrupt", outcome="failed")
    assert loads == 2
    fast = http.post("/v1/classify", json={"model": "corrupt", "input": "hi"})
    assert fast.status_code == 503
    assert fast.json()["error"]["code"] == "model_circuit_open"
    assert int(fast.headers["retry-after"]) >= 30
    assert metric(http, "hfserve_model_loads_total", model="corrupt", outcome="failed") == 2
    assert http.get("/v1/models/corrupt").json()["breaker"] == "open"
    ready = http.get("/ready")
    assert ready.status_code == 503 and ready.json()["breakers"] == {"corrupt": "open"}
    assert metric(http, "hfserve_breaker_state", model="corrupt", state="open") == 1
    # The others go on serving.
    assert http.post("/v1/embeddings", json={"model": "minilm", "input": "x"}).status_code \
        == 200
