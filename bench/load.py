"""Closed-loop async load generators over httpx: N clients, each sending its next request as
soon as the previous one answers, for warm-up + a fixed measurement window.

Only work that finishes inside the window counts (completed embedding requests; streamed
chat tokens by their arrival time), so warm-up and the drain at the end do not skew rates.
CPU use of this process (the client), the server and everything else is taken over the
window."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from bench.cpu import CpuMeter
from bench.stats import pct


@dataclass
class Window:
    start: float
    end: float

    def inside(self, t: float) -> bool:
        return self.start <= t <= self.end


@dataclass
class Totals:
    """What all clients of one phase record."""

    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)     # in-window requests
    units: float = 0.0                                       # sentences or tokens in window
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    tokens_reported: int = 0
    content_chunks: int = 0
    cancelled: int = 0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])


def _client(base_url: str) -> httpx.AsyncClient:
    """One keep-alive connection per client. A single pool shared by all clients costs
    O(clients x connections) CPU per request in httpcore, which made this process, not the
    server, the bottleneck at 64 clients."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base_url, limits=limits,
                             timeout=httpx.Timeout(120.0, connect=10.0))


async def _drive(concurrency: int, base_url: str, warmup: float, duration: float,
                 one: Callable, server_pid: int | None, drain: float) -> tuple[Totals, dict]:
    """Run ``concurrency`` closed-loop clients; after the window, wait up to ``drain``
    seconds for requests in flight, then cancel them (the client disconnects)."""
    totals = Totals()
    now = time.perf_counter()
    window = Window(now + warmup, now + warmup + duration)
    async with contextlib.AsyncExitStack() as stack:
        async def worker(index: int) -> None:
            client = await stack.enter_async_context(_client(base_url))
            n = index
            while time.perf_counter() < window.end:
                await one(client, n, window, totals)
                n += concurrency

        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        meter = CpuMeter(server_pid)
        await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
        cpu = meter.read()
        _, pending = await asyncio.wait(tasks, timeout=drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        totals.cancelled = len(pending)
    return totals, cpu


def _summary(totals: Totals, duration: float, cpu: dict, concurrency: int) -> dict:
    out = {"concurrency": concurrency, "duration_s": duration, "requests": totals.requests,
           "errors": totals.errors, "cancelled_at_end": totals.cancelled,
           "error_samples": totals.error_samples,
           "rate": totals.units / duration,
           "latency_p50_ms": pct(totals.latencies, 50) * 1e3,
           "latency_p95_ms": pct(totals.latencies, 95) * 1e3, **cpu}
    return out


async def embeddings_load(base_url: str, model: str, texts: list[str], *, concurrency: int,
                          per_request: int, warmup: float, duration: float,
                          server_pid: int | None) -> dict:
    """Sentences per second of /v1/embeddings, ``per_request`` sentences in each request."""

    async def one(client: httpx.AsyncClient, n: int, window: Window, totals: Totals) -> None:
        start = (n * per_request) % len(texts)
        batch = (texts + texts)[start:start + per_request]
        body = {"model": model, "input": batch[0] if per_request == 1 else batch}
        t0 = time.perf_counter()
        try:
            r = await client.post("/v1/embeddings", json=body)
            ok = r.status_code == 200 and len(r.json()["data"]) == per_request
            if not ok:
                totals.error(f"HTTP {r.status_code}: {r.text}")
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            ok = False
            totals.error(f"{type(exc).__name__}: {exc}")
        t1 = time.perf_counter()
        if ok and window.inside(t1):
            totals.requests += 1
            totals.units += per_request
            totals.latencies.append(t1 - t0)
        elif not ok:
            await asyncio.sleep(0.05)   # do not spin on a failing server

    totals, cpu = await _drive(concurrency, base_url, warmup, duration, one, server_pid,
                               drain=30.0)
    out = _summary(totals, duration, cpu, concurrency)
    out.update(unit="sentences/s", per_request=per_request)
    return out


async def _stream(client: httpx.AsyncClient, body: dict, stamps: list[float],
                  usage: list[int]) -> None:
    """POST one streaming chat request; time each chunk that carries content."""
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread()).decode()}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"stream error event: {chunk['error']}")
            if chunk.get("usage"):
                usage.append(chunk["usage"]["completion_tokens"])
            for choice in chunk.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    stamps.append(time.perf_counter())


def _account(totals: Totals, window: Window, t0: float, stamps: list[float],
             usage: list[int]) -> None:
    """Tokens that arrived inside the window; TTFT and latency of every request (warm-up
    included: a closed loop of equal-length requests restarts in bursts); ITL in the window."""
    if not stamps:
        return
    # A content chunk stands for usage/chunks tokens: a token whose text is incomplete is
    # sent with the next one. Without usage (cancelled), one token per chunk.
    per_chunk = usage[0] / len(stamps) if usage else 1.0
    totals.units += per_chunk * sum(window.inside(t) for t in stamps)
    totals.ttft.append(stamps[0] - t0)
    totals.itl.extend(b - a for a, b in zip(stamps, stamps[1:], strict=False)
                      if window.inside(b))
    if usage:  # a whole request: its latency counts wherever it ended
        totals.tokens_reported += usage[0]
        totals.content_chunks += len(stamps)
        totals.requests += 1
        totals.latencies.append(stamps[-1] - t0)


async def chat_load(base_url: str, model: str, prompts: list[str], *, concurrency: int,
                    max_tokens: int, warmup: float, duration: float,
                    server_pid: int | None, drain: float = 1.0,
                    fields: dict | None = None) -> dict:
    """Aggregate streamed output tokens/s, TTFT and inter-token latency of chat streams.
    ``fields`` are the request fields that make the server produce exactly ``max_tokens``
    tokens (default ``ignore_eos``; servers without it need another way)."""
    fields = {"ignore_eos": True} if fields is None else fields

    async def one(client: httpx.AsyncClient, n: int, window: Window, totals: Totals) -> None:
        body = {"model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
                "stream_options": {"include_usage": True}, **fields,
                "messages": [{"role": "user", "content": prompts[n % len(prompts)]}]}
        t0 = time.perf_counter()
        stamps: list[float] = []
        usage: list[int] = []
        try:
            await _stream(client, body, stamps, usage)
        except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as exc:
            totals.error(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.05)
            return
        finally:  # also when cancelled at the end: count what arrived in the window
            _account(totals, window, t0, stamps, usage)
        if not usage or not stamps:
            totals.error(f"stream without usage or content ({len(stamps)} chunks)")
        elif usage[0] != max_tokens:
            totals.error(f"completion_tokens {usage[0]} != max_tokens {max_tokens}")

    totals, cpu = await _drive(concurrency, base_url, warmup, duration, one, server_pid,
                               drain=drain)
    out = _summary(totals, duration, cpu, concurrency)
    out.update(unit="tokens/s", max_tokens=max_tokens,
               ttft_p50_ms=pct(totals.ttft, 50) * 1e3, ttft_p95_ms=pct(totals.ttft, 95) * 1e3,
               itl_p50_ms=pct(totals.itl, 50) * 1e3, itl_p95_ms=pct(totals.itl, 95) * 1e3,
               itl_max_ms=max(totals.itl, default=float("nan")) * 1e3,
               tokens_per_chunk=(totals.tokens_reported / totals.content_chunks
                                 if totals.content_chunks else float("nan")))
    return out
