"""Model lifecycle through the app (fake skills): on-demand loading shared by concurrent
requests, the admin routes, registration under the model roots, residency by bytes with
least-recently-used eviction, idle unloading and the circuit breaker."""

from __future__ import annotations

import asyncio
import json
import time

import fakes
import pytest

from conftest import BERT, model_folder

EMBED = "/v1/embeddings"


def embed(name: str, text: str = "hi") -> dict:
    return {"model": name, "input": text}


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def counter(text: str, line_start: str) -> float:
    """A metric's value in a Prometheus text page (0 when absent). The registry lives as
    long as the test process, so tests compare values before and after."""
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def states(body: dict) -> dict[str, str]:
    return {card["id"]: card["state"] for card in body["data"]}


def three(tmp_path, **extra) -> list[dict]:
    root = tmp_path / "models"
    root.mkdir(exist_ok=True)
    return [{"source": str(model_folder(root, n, BERT)), "name": n, "max_wait_ms": 0,
             **extra.get(n, {})} for n in ("a", "b", "c")]


async def test_concurrent_first_requests_share_one_load(start, dirs, control) -> None:
    models = [{"source": str(dirs.slow_emb), "name": "slow", "max_wait_ms": 0}]
    loads = 'hfserve_model_loads_total{model="slow",outcome="ready"}'
    async with start(models=models, preload="none") as srv:
        before = counter((await srv.client.get("/metrics")).text, loads)
        assert (await srv.client.get("/ready")).status_code == 200
        calls = [asyncio.create_task(srv.client.post(EMBED, json=embed("slow", f"t{i}")))
                 for i in range(8)]
        await wait_until(lambda: srv.engine.manager.entries["slow"].state.value == "loading")
        card = (await srv.client.get("/v1/models/slow")).json()
        assert card["state"] == "loading"
        control.load_release.set()
        answers = await asyncio.gather(*calls)
        assert [a.status_code for a in answers] == [200] * 8
        assert control.loads == ["slow"]
        metrics = (await srv.client.get("/metrics")).text
        assert counter(metrics, loads) == before + 1
        assert 'hfserve_model_state{model="slow",state="ready"} 1.0' in metrics


async def test_a_request_that_cannot_wait_for_the_load_gets_503(start, dirs, control) -> None:
    models = [{"source": str(dirs.slow_emb), "name": "slow", "max_wait_ms": 0}]
    async with start(models=models, preload="none", load_timeout_s=0.2) as srv:
        r = await srv.client.post(EMBED, json=embed("slow"))
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_loading"
        assert int(r.headers["retry-after"]) >= 1
        control.load_release.set()
        await wait_until(lambda: srv.engine.manager.entries["slow"].state.value == "ready")
        assert (await srv.client.post(EMBED, json=embed("slow"))).status_code == 200


async def test_admin_load_streams_progress_and_unload_frees_it(start, control) -> None:
    async with start(preload="none") as srv:
        async with srv.client.stream("POST", "/v1/models/emb/load",
                                     headers={"accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            text = (await r.aread()).decode()
        events = [json.loads(line[6:]) for line in text.splitlines()
                  if line.startswith("data: ")]
        assert [e["event"] for e in events] == ["resolving", "loading", "ready"]
        assert events[-1]["device"] == "cpu"
        card = (await srv.client.get("/v1/models/emb")).json()
        assert card["state"] == "ready" and card["resident_bytes"] > 0
        assert card["pinned"] is False and card["object"] == "model"
        gone = await srv.client.post("/v1/models/emb/unload")
        assert gone.status_code == 200 and gone.json()["state"] == "unloaded"
        assert gone.json()["resident_bytes"] == 0
        again = await srv.client.post("/v1/models/emb/load")
        assert again.status_code == 200 and again.json()["state"] == "ready"
        assert control.loads == ["emb", "emb"]


async def test_unload_lets_a_running_stream_finish(start) -> None:
    async with start() as srv:
        await srv.wait_ready()
        stream = asyncio.create_task(srv.client.post("/v1/chat/completions", json={
            "model": "gen", "stream": True, "max_tokens": 30,
            "messages": [{"role": "user", "content": fakes.FOREVER}]}))
        await wait_until(lambda: srv.engine.manager.entries["gen"].busy == 1)
        unload = asyncio.create_task(srv.client.post("/v1/models/gen/unload"))
        await wait_until(lambda: srv.engine.manager.entries["gen"].state.value == "draining")
        # A request that comes while the model drains waits for the unload, then loads
        # the model again: it is answered, not refused.
        waiting = asyncio.create_task(srv.client.post("/v1/chat/completions", json={
            "model": "gen", "messages": [{"role": "user", "content": "hi"}]}))
        done = await stream
        assert done.status_code == 200
        assert done.text.rstrip().endswith("data: [DONE]")
        assert '"finish_reason":"length"' in done.text.replace(" ", "")
        assert (await unload).json()["state"] == "unloaded"
        answered = await waiting
        assert answered.status_code == 200
        assert srv.engine.manager.entries["gen"].state.value == "ready"


async def test_register_and_delete_a_model_under_the_roots(start, tmp_path, control) -> None:
    root = tmp_path / "roots"
    root.mkdir()
    folder = model_folder(root, "new", BERT)
    async with start(model_roots=[str(root)]) as srv:
        await srv.wait_ready()
        made = await srv.client.post("/v1/models", json={"id": "new", "source": str(folder),
                                                        "pinned": True})
        assert made.status_code == 201, made.text
        assert made.json()["state"] == "unloaded" and made.json()["pinned"] is True
        assert (await srv.client.post(EMBED, json=embed("new"))).status_code == 200
        twice = await srv.client.post("/v1/models", json={"id": "new", "source": str(folder)})
        assert twice.status_code == 409
        deleted = await srv.client.delete("/v1/models/new")
        assert deleted.status_code == 204
        assert (await srv.client.get("/v1/models/new")).status_code == 404
        assert (await srv.client.post(EMBED, json=embed("new"))).status_code == 404


async def test_register_refuses_paths_out_of_the_roots(start, tmp_path) -> None:
    root = tmp_path / "roots"
    root.mkdir()
    outside = model_folder(tmp_path, "outside", BERT)
    (root / "link").symlink_to(outside)
    async with start(model_roots=[str(root)]) as srv:
        for source, status in [(f"{root}/../outside", 403), (str(root / "link"), 403),
                               (str(outside), 403), ("relative/path", 400),
                               (str(root / "absent"), 400)]:
            r = await srv.client.post("/v1/models", json={"id": "x", "source": source})
            assert r.status_code == status, (source, r.text)
        assert "x" not in states((await srv.client.get("/v1/models")).json())


async def test_admin_routes_can_be_turned_off(start, tmp_path) -> None:
    async with start(admin_routes=False) as srv:
        for method, path in [("POST", "/v1/models/emb/load"), ("POST", "/v1/models/emb/unload"),
                             ("POST", "/v1/models"), ("DELETE", "/v1/models/emb")]:
            r = await srv.client.request(method, path, json={"id": "x", "source": "/x"})
            assert r.status_code == 404, (method, path)
        assert (await srv.client.get("/v1/models/emb")).status_code == 200


async def test_eviction_is_least_recently_used_and_spares_the_pinned(start, tmp_path,
                                                                     control) -> None:
    models = three(tmp_path, a={"pinned": True})
    # Each fake model is counted for the fixed headroom (16 MiB): two fit, three do not.
    async with start(models=models, preload="none", memory_limits={"cpu": "40MiB"}) as srv:
        for name in ("a", "b"):
            assert (await srv.client.post(EMBED, json=embed(name))).status_code == 200
        assert (await srv.client.post(EMBED, json=embed("c"))).status_code == 200
        # a is the least recently used but pinned: b leaves.
        listed = states((await srv.client.get("/v1/models")).json())
        assert listed == {"a": "ready", "b": "unloaded", "c": "ready"}
        assert (await srv.client.post(EMBED, json=embed("b"))).status_code == 200
        listed = states((await srv.client.get("/v1/models")).json())
        assert listed == {"a": "ready", "b": "ready", "c": "unloaded"}
        metrics = (await srv.client.get("/metrics")).text
        assert counter(metrics, 'hfserve_model_evictions_total{model="b"}') >= 1
        assert counter(metrics, 'hfserve_model_evictions_total{model="c"}') >= 1
        assert counter(metrics, 'hfserve_model_evictions_total{model="a"}') == 0
        assert control.loads == ["a", "b", "c", "b"]


async def test_a_load_drains_a_busy_victim_once_it_has_been_resident_a_while(
        start, tmp_path, control) -> None:
    """Room held only by a model with a request in flight: once it has been resident for
    min_residency_s the load drains it (the request finishes; the next ones wait for the
    unload and load it again) rather than wait for an idle moment that steady traffic
    never gives, and nothing is lost."""
    models = three(tmp_path, a={"pinned": True})
    async with start(models=models, preload="none", memory_limits={"cpu": "40MiB"},
                     load_timeout_s=10, min_residency_s=0.5) as srv:
        for name in ("a", "b"):
            assert (await srv.client.post(EMBED, json=embed(name))).status_code == 200
        b = srv.engine.manager.entries["b"]
        running = asyncio.create_task(srv.client.post(EMBED, json=embed("b", fakes.BLOCK)))
        await asyncio.to_thread(control.run_started.wait, 10)
        load = asyncio.create_task(srv.client.post(EMBED, json=embed("c")))
        await wait_until(lambda: b.state.value == "draining")
        # Not before b was resident for min_residency_s.
        assert time.monotonic() - b.ready_since >= 0.5
        later = asyncio.create_task(srv.client.post(EMBED, json=embed("b", "later")))
        await asyncio.sleep(0.1)
        control.run_release.set()
        answers = await asyncio.gather(running, load, later)
        assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
        assert control.loads == ["a", "b", "c", "b"]


async def test_models_that_do_not_fit_together_take_turns_without_losing_requests(
        start, tmp_path, control) -> None:
    """Steady traffic to two models that do not fit together: the requests that waited
    for a load are served by it even when the other model's load drains it next, and
    every request is answered."""
    models = three(tmp_path, a={"pinned": True})
    async with start(models=models, preload="none", memory_limits={"cpu": "40MiB"},
                     load_timeout_s=20, min_residency_s=0) as srv:
        assert (await srv.client.post(EMBED, json=embed("a"))).status_code == 200

        async def client(first: str) -> list[int]:
            codes = []
            for i in range(6):
                name = first if i % 2 == 0 else ("c" if first == "b" else "b")
                codes.append((await srv.client.post(EMBED, json=embed(name, f"t{i}")))
                             .status_code)
            return codes

        answers = await asyncio.gather(*(client("b" if k % 2 else "c") for k in range(6)))
        assert [c for codes in answers for c in codes] == [200] * 36
        assert control.loads.count("b") >= 2 and control.loads.count("c") >= 2


async def test_nothing_evictable_is_a_clear_503(start, tmp_path) -> None:
    models = three(tmp_path, a={"pinned": True}, b={"pinned": True})
    async with start(models=models, preload="none", memory_limits={"cpu": "40MiB"}) as srv:
        for name in ("a", "b"):
            assert (await srv.client.post(EMBED, json=embed(name))).status_code == 200
        r = await srv.client.post(EMBED, json=embed("c"))
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "model_memory_exhausted"
        assert "insufficient memory to load c" in error["message"]
        assert "a (pinned)" in error["message"] and "b (pinned)" in error["message"]
        assert int(r.headers["retry-after"]) >= 1
        assert (await srv.client.get("/ready")).status_code == 200   # not a broken model
        assert srv.engine.manager.entries["c"].breaker.consecutive == 0


async def test_an_idle_model_is_unloaded_after_its_ttl(start, control) -> None:
    async with start(preload="none", idle_ttl_s=0.3) as srv:
        assert (await srv.client.post(EMBED, json=embed("emb"))).status_code == 200
        entry = srv.engine.manager.entries["emb"]
        assert entry.state.value == "ready"
        await wait_until(lambda: entry.state.value == "unloaded", timeout=5)
        assert (await srv.client.post(EMBED, json=embed("emb"))).status_code == 200
        assert control.loads == ["emb", "emb"]


async def test_the_breaker_opens_on_a_failing_model_and_fails_fast(start, tmp_path,
                                                                   control) -> None:
    folder = model_folder(tmp_path, "corrupt", {**BERT, fakes.FAIL_LOAD: True})
    models = [{"source": str(folder), "name": "corrupt"},
              {"source": str(model_folder(tmp_path, "good", BERT)), "name": "good"}]
    async with start(models=models, preload="none", breaker_failures=3,
                     breaker_open_s=60) as srv:
        for _ in range(3):
            r = await srv.client.post(EMBED, json=embed("corrupt"))
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "model_unavailable"
            assert "corrupt" in r.json()["error"]["message"]
        assert control.loads == ["corrupt"] * 3
        fast = await srv.client.post(EMBED, json=embed("corrupt"))
        assert fast.status_code == 503
        assert fast.json()["error"]["code"] == "model_circuit_open"
        assert int(fast.headers["retry-after"]) >= 50
        assert control.loads == ["corrupt"] * 3          # no load tried while open
        ready = await srv.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["breakers"] == {"corrupt": "open"}
        card = (await srv.client.get("/v1/models/corrupt")).json()
        assert card["breaker"] == "open" and card["state"] == "failed"
        metrics = (await srv.client.get("/metrics")).text
        assert 'hfserve_breaker_state{model="corrupt",state="open"} 1.0' in metrics
        assert (await srv.client.post(EMBED, json=embed("good"))).status_code == 200


async def test_client_errors_never_open_the_breaker(server) -> None:
    for _ in range(8):
        r = await server.client.post(EMBED, json={"model": "emb", "input": [""]})
        assert r.status_code == 400
    assert server.engine.manager.entries["emb"].breaker.state.value == "closed"
    assert (await server.client.post(EMBED, json=embed("emb"))).status_code == 200


@pytest.mark.parametrize("skip", [False, True])
async def test_an_unservable_configured_model_fails_the_start(start, tmp_path, skip) -> None:
    bad = model_folder(tmp_path, "bad", {"model_type": "nothing-known",
                                         "architectures": ["NoSuchModel"]})
    models = [{"source": str(bad), "name": "bad"},
              {"source": str(model_folder(tmp_path, "ok", BERT)), "name": "ok"}]
    if not skip:
        with pytest.raises(Exception, match="cannot serve the configured model"):
            async with start(models=models):
                pass
        return
    async with start(models=models, skip_unservable_models=True) as srv:
        ready = await srv.wait_ready()
        assert ready.json()["models"] == {"bad": "failed", "ok": "ready"}


async def test_a_configured_model_no_device_can_run_fails_the_start(start, tmp_path) -> None:
    """A device the machine lacks is a configuration error at start, not a server that
    stays unready."""
    models = [{"source": str(model_folder(tmp_path, "ok", BERT)), "name": "ok",
               "device": "mps"}]
    with pytest.raises(Exception, match="cannot serve the configured model.*ok.*mps"):
        async with start(models=models):
            pass


async def test_a_discovered_model_no_skill_serves_is_unsupported(start, tmp_path) -> None:
    bad = model_folder(tmp_path, "odd", {"model_type": "nothing-known",
                                         "architectures": ["NoSuchModel"]})
    models = [{"source": str(bad), "name": "odd", "discovered": True}]
    async with start(models=models) as srv:
        ready = await srv.wait_ready()
        assert ready.json()["models"] == {"odd": "unsupported"}
        card = (await srv.client.get("/v1/models/odd")).json()
        assert card["state"] == "unsupported" and card["error"]
        r = await srv.client.post(EMBED, json=embed("odd"))
        assert r.status_code == 400


async def test_admin_load_of_a_failing_model_ends_with_an_error_event(start, tmp_path) -> None:
    folder = model_folder(tmp_path, "corrupt", {**BERT, fakes.FAIL_LOAD: True})
    async with start(models=[{"source": str(folder), "name": "corrupt"}],
                     preload="none") as srv:
        async with srv.client.stream("POST", "/v1/models/corrupt/load",
                                     headers={"accept": "text/event-stream"}) as r:
            text = (await r.aread()).decode()
        events = [json.loads(line[6:]) for line in text.splitlines()
                  if line.startswith("data: ")]
        assert [e["event"] for e in events] == ["resolving", "loading", "error"]
        assert events[-1]["code"] == "model_unavailable"
        assert "corrupt" in events[-1]["message"]
        plain = await srv.client.post("/v1/models/corrupt/load")
        assert plain.status_code == 503
        assert plain.json()["error"]["code"] == "model_unavailable"
        assert (await srv.client.post("/v1/models/nope/load")).status_code == 404


async def test_admin_load_moves_a_model_to_the_device_asked_for(start) -> None:
    async with start() as srv:
        await srv.wait_ready()
        bad = await srv.client.post("/v1/models/emb/load", json={"device": "cuda"})
        assert bad.status_code == 503
        assert "cuda" in bad.json()["error"]["message"]
        back = await srv.client.post("/v1/models/emb/load", json={"device": "cpu"})
        assert back.status_code == 200, back.text
        assert back.json()["state"] == "ready" and back.json()["device"] == "cpu"
        assert (await srv.client.post(EMBED, json=embed("emb"))).status_code == 200


async def test_generations_the_model_fails_open_its_breaker(start) -> None:
    async with start(breaker_failures=2, breaker_open_s=60) as srv:
        await srv.wait_ready()
        body = {"model": "gen", "messages": [{"role": "user", "content": fakes.EXPLODE}]}
        for _ in range(2):
            failed = await srv.client.post("/v1/chat/completions", json=body)
            assert failed.status_code == 500
        fast = await srv.client.post("/v1/chat/completions", json={
            "model": "gen", "messages": [{"role": "user", "content": "hi"}]})
        assert fast.status_code == 503
        assert fast.json()["error"]["code"] == "model_circuit_open"
        assert srv.engine.manager.entries["gen"].busy == 0
        assert (await srv.client.post(EMBED, json=embed("emb"))).status_code == 200
