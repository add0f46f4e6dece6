"""Closed-loop async load generators over aiohttp: N clients, each sending its next request
as soon as the previous one answers, for warm-up + a fixed measurement window.

The client shares the machine's cores with the server it measures, so it must cost as little
as it can: per request, aiohttp here takes about 0.25 ms of CPU against 0.65 ms for httpx
(64 clients x 1 sentence against hfserve: 17 % against 40 % of a core), and what the client
does not burn is left to the server under test, whichever it is.

Only work that finishes inside the window counts (completed embedding and transcription
requests; streamed chat tokens by their arrival time), so warm-up and the drain at the end
do not skew rates. CPU use of this process (the client), the server and everything else is
taken over the window.

``chat_load(processes=P)`` spreads the clients over P spawned processes (one event loop
each), so that the load generator is not what limits a fast server: the parent sets one
measurement window for all of them once every child is ready, merges what they recorded
and adds their CPU to the client's. Spawned children import the calling script again, so it
needs the usual ``if __name__ == "__main__":`` guard."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

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


HEADERS: dict[str, str] = {}
"""Sent with every request (``Authorization`` for a server with keys)."""


def _client(base_url: str) -> aiohttp.ClientSession:
    """One keep-alive connection per client. A single pool shared by all clients made the
    load generator, not the server, the bottleneck at 64 clients."""
    return aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=1),
                                 headers=HEADERS,
                                 timeout=aiohttp.ClientTimeout(total=120.0, connect=10.0))


# What a failed request raises in the client.
REQUEST_ERRORS = (aiohttp.ClientError, TimeoutError, ValueError, KeyError)


def _window(warmup: float, duration: float) -> Window:
    now = time.perf_counter()
    return Window(now + warmup, now + warmup + duration)


async def _metered(window: Window, server_pid: int | None,
                   at_start: Callable[[], object] | None) -> dict:
    """Sleep through ``window``; CPU use over it. ``at_start`` is called as it opens."""
    await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
    meter = CpuMeter(server_pid)
    if at_start is not None:
        at_start()
    await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
    return meter.read()


async def _drive(clients: Sequence[int], stride: int, base_url: str, window: Window,
                 one: Callable, server_pid: int | None, drain: float,
                 at_start: Callable[[], object] | None = None) -> tuple[Totals, dict]:
    """Run closed-loop clients (client ``i`` sends requests ``i``, ``i + stride``, ...);
    after the window, wait up to ``drain`` seconds for requests in flight, then cancel them
    (the client disconnects)."""
    totals = Totals()
    async with contextlib.AsyncExitStack() as stack:
        async def worker(index: int) -> None:
            client = await stack.enter_async_context(_client(base_url))
            n = index
            while time.perf_counter() < window.end:
                await one(client, n, window, totals)
                n += stride

        tasks = [asyncio.create_task(worker(i)) for i in clients]
        cpu = await _metered(window, server_pid, at_start)
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


async def _json_load(base_url: str, path: str, request: Callable[[int], tuple[dict, float]],
                     answers: Callable[[dict], float | None], *, concurrency: int,
                     warmup: float, duration: float, server_pid: int | None,
                     drain: float = 30.0) -> tuple[Totals, dict]:
    """Closed-loop POSTs to ``path`` of ``request(n) -> (post's keyword arguments: json= or
    data=, units)``; a request counts (its units) when it answers 200 inside the window
    with ``answers(json) == units``."""

    async def one(client: aiohttp.ClientSession, n: int, window: Window,
                  totals: Totals) -> None:
        sent, units = request(n)
        t0 = time.perf_counter()
        try:
            async with client.post(path, **sent) as r:
                text = await r.text()
            ok = r.status == 200 and answers(json.loads(text)) == units
            if not ok:
                totals.error(f"HTTP {r.status}: {text}")
        except REQUEST_ERRORS as exc:
            ok = False
            totals.error(f"{type(exc).__name__}: {exc}")
        t1 = time.perf_counter()
        if ok and window.inside(t1):
            totals.requests += 1
            totals.units += units
            totals.latencies.append(t1 - t0)
        elif not ok:
            await asyncio.sleep(0.05)   # do not spin on a failing server

    return await _drive(range(concurrency), concurrency, base_url,
                        _window(warmup, duration), one, server_pid, drain=drain)


def _cycle(texts: list[str], start: int, count: int) -> list[str]:
    start %= len(texts)
    return (texts + texts)[start:start + count]


async def embeddings_load(base_url: str, model: str, texts: list[str], *, concurrency: int,
                          per_request: int, warmup: float, duration: float,
                          server_pid: int | None, fields: dict | None = None,
                          unit: str = "sentences/s") -> dict:
    """Sentences per second of /v1/embeddings, ``per_request`` sentences in each request.
    ``fields``: more request fields (``{"modality": "image"}``: ``texts`` are images, as
    data URLs), and ``unit`` what the rate counts then."""

    def request(n: int) -> tuple[dict, int]:
        batch = _cycle(texts, n * per_request, per_request)
        return {"json": {"model": model, "input": batch[0] if per_request == 1 else batch,
                         **(fields or {})}}, per_request

    totals, cpu = await _json_load(base_url, "/v1/embeddings", request,
                                   lambda answer: len(answer["data"]), concurrency=concurrency,
                                   warmup=warmup, duration=duration, server_pid=server_pid)
    out = _summary(totals, duration, cpu, concurrency)
    out.update(unit=unit, per_request=per_request)
    return out


async def transcription_load(base_url: str, model: str, files: list[bytes], *,
                             seconds: float, concurrency: int, warmup: float,
                             duration: float, server_pid: int | None,
                             tokens_per_request: int | None = None,
                             fields: dict | None = None) -> dict:
    """Audio seconds per second of /v1/audio/transcriptions: one file of ``seconds`` per
    request, as the openai SDK sends it (a multipart form with ``file``, ``model`` and
    ``fields``), JSON answer. ``tokens_per_request``: what each transcript decodes, when
    fixed (the model's generation config), for tokens per second."""

    def request(n: int) -> tuple[dict, float]:
        form = aiohttp.FormData()       # one per request: a form is consumed when sent
        form.add_field("model", model)
        for key, value in (fields or {}).items():
            form.add_field(key, str(value))
        form.add_field("file", files[n % len(files)], filename="speech.wav",
                       content_type="audio/wav")
        return {"data": form}, seconds

    totals, cpu = await _json_load(
        base_url, "/v1/audio/transcriptions", request,
        lambda answer: seconds if isinstance(answer["text"], str) else None,
        concurrency=concurrency, warmup=warmup, duration=duration, server_pid=server_pid,
        drain=60.0)
    out = _summary(totals, duration, cpu, concurrency)
    out.update(unit="audio s/s", seconds_per_request=seconds,
               requests_per_s=totals.requests / duration,
               tokens_per_request=tokens_per_request,
               tokens_per_s=(totals.requests * tokens_per_request / duration
                             if tokens_per_request else float("nan")))
    return out


def rerank_request(texts: list[str], n: int, documents: int) -> tuple[str, list[str]]:
    """The query and documents of rerank request ``n`` (the in-process baselines score the
    same pairs)."""
    return texts[(7 * n + 3) % len(texts)], _cycle(texts, n * documents, documents)


async def rerank_load(base_url: str, model: str, texts: list[str], *, concurrency: int,
                      documents: int, warmup: float, duration: float,
                      server_pid: int | None) -> dict:
    """(query, document) pairs per second of /v1/rerank (the Cohere form hfserve and
    Infinity both serve), one query and ``documents`` documents in each request; no
    documents sent back."""

    def request(n: int) -> tuple[dict, int]:
        query, docs = rerank_request(texts, n, documents)
        return {"json": {"model": model, "query": query, "documents": docs,
                         "return_documents": False}}, documents

    totals, cpu = await _json_load(base_url, "/v1/rerank", request,
                                   lambda answer: len(answer["results"]),
                                   concurrency=concurrency, warmup=warmup, duration=duration,
                                   server_pid=server_pid)
    out = _summary(totals, duration, cpu, concurrency)
    out.update(unit="pairs/s", per_request=documents)
    return out


async def classify_load(base_url: str, model: str, texts: list[str], *, concurrency: int,
                        warmup: float, duration: float, server_pid: int | None) -> dict:
    """Texts per second of /v1/classify, one text per request (as a list of one: the form
    hfserve and Infinity both take)."""

    def request(n: int) -> tuple[dict, int]:
        return {"json": {"model": model, "input": [texts[n % len(texts)]]}}, 1

    totals, cpu = await _json_load(base_url, "/v1/classify", request,
                                   lambda answer: len(answer["data"]), concurrency=concurrency,
                                   warmup=warmup, duration=duration, server_pid=server_pid)
    out = _summary(totals, duration, cpu, concurrency)
    out.update(unit="texts/s", per_request=1)
    return out


async def _stream(client: aiohttp.ClientSession, body: dict, stamps: list[float],
                  usage: list[int]) -> None:
    """POST one streaming chat request; time each chunk that carries content or tool calls
    (a call goes out whole once its block is complete, so its tokens arrive together)."""
    async with client.post("/v1/chat/completions", json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {await r.text()}")
        async for raw in r.content:     # line by line
            line = raw.decode().rstrip("\r\n")
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"stream error event: {chunk['error']}")
            if chunk.get("usage"):
                usage.append(chunk["usage"]["completion_tokens"])
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                if delta.get("content") or delta.get("tool_calls"):
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


def _chat_one(model: str, prompts: list[str], max_tokens: int, fields: dict,
              exact: bool = True) -> Callable:
    """The request of chat client ``n`` (a module-level factory: spawned processes make
    their own). ``exact``: a request that ends before ``max_tokens`` is an error."""

    async def one(client: aiohttp.ClientSession, n: int, window: Window,
                  totals: Totals) -> None:
        body = {"model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
                "stream_options": {"include_usage": True}, **fields,
                "messages": [{"role": "user", "content": prompts[n % len(prompts)]}]}
        t0 = time.perf_counter()
        stamps: list[float] = []
        usage: list[int] = []
        try:
            await _stream(client, body, stamps, usage)
        except (*REQUEST_ERRORS, RuntimeError) as exc:
            totals.error(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.05)
            return
        finally:  # also when cancelled at the end: count what arrived in the window
            _account(totals, window, t0, stamps, usage)
        if not usage or not stamps:
            totals.error(f"stream without usage or content ({len(stamps)} chunks)")
        elif usage[0] != max_tokens if exact else not 0 < usage[0] <= max_tokens:
            totals.error(f"completion_tokens {usage[0]}, max_tokens {max_tokens}")

    return one


def _chat_child(conn, clients: range, stride: int, base_url: str, drain: float,
                spec: tuple) -> None:
    """A spawned load process: say ready, get the window, run its clients, send back what
    they recorded (plain data) and its own CPU % over the window."""
    conn.send("ready")
    start, end = conn.recv()
    totals, cpu = asyncio.run(_drive(clients, stride, base_url, Window(start, end),
                                     _chat_one(*spec), None, drain))
    conn.send((dataclasses.asdict(totals), cpu["client_cpu_pct"]))
    conn.close()


async def _receive(conn, proc, timeout: float):
    if not await asyncio.to_thread(conn.poll, timeout):
        raise RuntimeError(f"load process {proc.pid}: no answer in {timeout:.0f}s")
    try:
        return conn.recv()
    except EOFError:
        proc.join(5.0)
        raise RuntimeError(f"load process {proc.pid} exited with code {proc.exitcode}") \
            from None


def _split(concurrency: int, processes: int) -> list[range]:
    """Client indices of each process, as even as can be (none empty)."""
    size, extra = divmod(concurrency, processes)
    bounds = [k * size + min(k, extra) for k in range(processes + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


async def _drive_processes(processes: int, concurrency: int, base_url: str, warmup: float,
                           duration: float, spec: tuple, server_pid: int | None, drain: float,
                           at_start: Callable[[], object] | None) -> tuple[Totals, dict]:
    """``_drive`` in ``processes`` spawned children, all measuring the same window."""
    context = multiprocessing.get_context("spawn")
    children, parts = [], None
    try:
        for clients in _split(concurrency, processes):
            conn, theirs = context.Pipe()
            proc = context.Process(target=_chat_child, daemon=True, name="load-client",
                                   args=(theirs, clients, concurrency, base_url, drain, spec))
            proc.start()
            theirs.close()
            children.append((proc, conn))
        for proc, conn in children:
            await _receive(conn, proc, 120.0)          # "ready": spawned and imported
        window = _window(warmup, duration)             # perf_counter: CLOCK_MONOTONIC
        for _, conn in children:
            conn.send((window.start, window.end))
        cpu = await _metered(window, server_pid, at_start)
        parts = [await _receive(conn, proc, drain + 60.0) for proc, conn in children]
    finally:
        for proc, conn in children:
            conn.close()
            if parts is not None:       # done: it exits by itself
                proc.join(5.0)
            if proc.is_alive():         # or failed or interrupted: do not wait
                proc.kill()
                proc.join(5.0)
    totals = Totals()
    for data, _ in parts:       # sum the counts, concatenate the lists
        for name, value in data.items():
            setattr(totals, name, getattr(totals, name) + value)
    totals.error_samples = totals.error_samples[:5]
    children_pct = sum(pct_ for _, pct_ in parts)
    cpu["client_cpu_pct"] += children_pct
    cpu["other_cpu_pct"] = max(0.0, cpu["other_cpu_pct"] - children_pct)
    return totals, cpu


async def chat_load(base_url: str, model: str, prompts: list[str], *, concurrency: int,
                    max_tokens: int, warmup: float, duration: float,
                    server_pid: int | None, drain: float = 1.0,
                    fields: dict | None = None, processes: int = 1,
                    at_start: Callable[[], object] | None = None,
                    exact: bool = True) -> dict:
    """Aggregate streamed output tokens/s, TTFT and inter-token latency of chat streams.
    ``fields`` are the request fields that make the server produce exactly ``max_tokens``
    tokens (default ``ignore_eos``; servers without it need another way); with ``exact``
    false, requests may end earlier (EOS, a closed JSON schema) and every rate is per
    generated token (``usage.completion_tokens``). ``processes`` > 1
    runs the clients in that many spawned processes (at most one per client);
    ``at_start`` is called when the measurement window opens."""
    fields = {"ignore_eos": True} if fields is None else fields
    spec = (model, prompts, max_tokens, fields, exact)
    processes = max(1, min(processes, concurrency))
    if processes == 1:
        totals, cpu = await _drive(range(concurrency), concurrency, base_url,
                                   _window(warmup, duration), _chat_one(*spec), server_pid,
                                   drain, at_start)
    else:
        totals, cpu = await _drive_processes(processes, concurrency, base_url, warmup,
                                             duration, spec, server_pid, drain, at_start)
    out = _summary(totals, duration, cpu, concurrency)
    out.update(unit="tokens/s", max_tokens=max_tokens,
               ttft_p50_ms=pct(totals.ttft, 50) * 1e3, ttft_p95_ms=pct(totals.ttft, 95) * 1e3,
               itl_p50_ms=pct(totals.itl, 50) * 1e3, itl_p95_ms=pct(totals.itl, 95) * 1e3,
               itl_max_ms=max(totals.itl, default=float("nan")) * 1e3,
               tokens_per_chunk=(totals.tokens_reported / totals.content_chunks
                                 if totals.content_chunks else float("nan")),
               tokens_per_request=(totals.tokens_reported / totals.requests
                                   if totals.requests else float("nan")))
    return out
