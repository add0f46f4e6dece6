"""SIGTERM: readiness and new work stop at once, requests in flight run on for the drain
time, streams still running then end with ``finish_reason: "abort"`` and [DONE], and the process
exits 0 (a server of its own, on the shared server's export cache)."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx

from .conftest import CHAT, SMOL, launch, stop

DRAIN_S = 4


def test_sigterm_finishes_short_work_and_ends_long_streams_cleanly(server, tmp_path):
    config = {"cache_dir": str(server["tmp"] / "cache"), "drain_timeout_s": DRAIN_S,
              "models": [{"name": CHAT, "source": str(SMOL), "threads": 1, "backend": "torch",
                          "max_concurrent": 4}]}
    proc, base, log = launch(config, tmp_path)
    try:
        events: list[str] = []
        started = threading.Event()

        def long_stream() -> None:
            with httpx.stream("POST", f"{base}/v1/chat/completions", timeout=60, json={
                    "model": CHAT, "messages": [{"role": "user", "content": "Count."}],
                    "max_tokens": 3000, "ignore_eos": True, "stream": True}) as r:
                for line in r.iter_lines():
                    if line:
                        events.append(line.removeprefix("data: "))
                        started.set()

        reader = threading.Thread(target=long_stream)
        reader.start()
        assert started.wait(60)
        short: list[httpx.Response] = []
        asker = threading.Thread(target=lambda: short.append(httpx.post(
            f"{base}/v1/chat/completions", timeout=60, json={
                "model": CHAT, "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 6, "ignore_eos": True})))
        asker.start()
        time.sleep(0.3)                            # the short request is in flight
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        asker.join(60)
        reader.join(60)
        assert proc.wait(timeout=DRAIN_S + 20) == 0
        assert time.monotonic() - signalled >= DRAIN_S - 0.5   # the stream ran the drain
        assert short and short[0].status_code == 200, short
        assert short[0].json()["choices"][0]["finish_reason"] == "length"
        assert events[-1] == "[DONE]"
        last = json.loads(events[-2])
        assert last["choices"][0]["finish_reason"] == "abort"
        assert len(events) > 10                    # it streamed through the drain
    finally:
        stop(proc, log)
