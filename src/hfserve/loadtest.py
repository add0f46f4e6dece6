"""``hfserve bench``: a quick closed-loop load test of a running server, and a plot of it.

N clients each send one request after another for a fixed time: chat (streamed, so time
to first token is seen), completions or embeddings. Each request's start, latency, first
token and token count are kept; the summary gives requests/s, tokens/s and latency
percentiles, and ``--plot`` draws throughput per second and latency over the run
(matplotlib, an optional extra). For a benchmark to publish use ``bench/``; this is the
operator's quick look."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

TASKS = ("chat", "completions", "embeddings")


@dataclass(frozen=True)
class Sample:
    start: float            # seconds since the run began
    latency: float          # seconds
    first_token: float | None
    tokens: int
    ok: bool


def _body(task: str, model: str, max_tokens: int, prompt: str) -> tuple[str, dict[str, Any]]:
    if task == "chat":
        return "/v1/chat/completions", {
            "model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt}]}
    if task == "completions":
        return "/v1/completions", {"model": model, "stream": True, "max_tokens": max_tokens,
                                   "temperature": 0, "prompt": prompt,
                                   "stream_options": {"include_usage": True}}
    return "/v1/embeddings", {"model": model, "input": prompt}


async def _one(client: httpx.AsyncClient, path: str, body: dict[str, Any], t0: float
               ) -> Sample:
    start = time.perf_counter()
    first, tokens = None, 0
    try:
        if not body.get("stream"):
            r = await client.post(path, json=body)
            ok = r.status_code == 200
            usage = (r.json().get("usage") or {}) if ok else {}
            tokens = int(usage.get("prompt_tokens", 0))
        else:
            async with client.stream("POST", path, json=body) as r:
                ok = r.status_code == 200
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if first is None and chunk.get("choices"):
                        first = time.perf_counter() - start
                    if chunk.get("usage"):
                        tokens = int(chunk["usage"].get("completion_tokens", 0))
    except httpx.HTTPError:
        ok = False
    return Sample(start - t0, time.perf_counter() - start, first, tokens, ok)


async def run(url: str, model: str, task: str = "chat", clients: int = 8,
              seconds: float = 10.0, max_tokens: int = 64, api_key: str | None = None,
              prompt: str = "Write a short story about a lighthouse.") -> list[Sample]:
    path, body = _body(task, model, max_tokens, prompt)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients)
    samples: list[Sample] = []
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, limits=limits,
                                 timeout=httpx.Timeout(600.0)) as client:
        t0 = time.perf_counter()
        deadline = t0 + seconds

        async def loop() -> None:
            while time.perf_counter() < deadline:
                samples.append(await _one(client, path, body, t0))

        await asyncio.gather(*(loop() for _ in range(clients)))
    return samples


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[Sample]) -> dict[str, Any]:
    good = [s for s in samples if s.ok]
    span = max((s.start + s.latency for s in samples), default=0.0) or 1.0
    latencies = [s.latency * 1000 for s in good]
    firsts = [s.first_token * 1000 for s in good if s.first_token is not None]
    return {"requests": len(samples), "errors": len(samples) - len(good),
            "seconds": round(span, 3), "requests_per_s": round(len(good) / span, 3),
            "tokens_per_s": round(sum(s.tokens for s in good) / span, 3),
            "latency_ms": {f"p{int(q * 100)}": _percentile(latencies, q)
                           for q in (0.5, 0.9, 0.99)},
            "ttft_ms": {f"p{int(q * 100)}": _percentile(firsts, q) for q in (0.5, 0.9, 0.99)}}


def plot(samples: list[Sample], out: Path, title: str) -> None:
    """Requests/s (and tokens/s where there are tokens) per second of the run, above each
    request's latency at the time it ended."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("hfserve: --plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [s for s in samples if s.ok]
    width = int(max((s.start + s.latency for s in good), default=0.0)) + 1
    done = [0] * width
    tokens = [0] * width
    for s in good:
        second = int(s.start + s.latency)
        done[second] += 1
        tokens[second] += s.tokens
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(range(width), done, label="requests/s")
    if any(tokens):
        twin = top.twinx()
        twin.plot(range(width), tokens, color="tab:orange", label="tokens/s")
        twin.set_ylabel("tokens/s")
    top.set_ylabel("requests/s")
    top.set_title(title)
    bottom.scatter([s.start + s.latency for s in good], [s.latency * 1000 for s in good], s=4)
    bottom.set_xlabel("seconds")
    bottom.set_ylabel("latency (ms)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    out.with_suffix(".json").write_text(json.dumps(
        {"summary": summary(samples), "samples": [asdict(s) for s in samples]}, indent=1))
