"""A bounded soak: a saturating mixed load for a fixed time on one server whose memory budget
holds only some of its models, so that they are evicted and loaded again all along. Counts
every answer by status (a lost request is anything but 200, or no answer), and samples the
server's resident memory (its process tree) to see whether it stays flat after warm-up.

Models: two MiniLM entries (``minilm-a``, ``minilm-b``) and SmolLM2 (GGUF, float32), under a
CPU budget that holds SmolLM2 and one MiniLM: embedding clients alternate between the two
MiniLM names, so each switch may evict the other.

    .venv/bin/python bench/soak.py [--minutes 10] [--embed-clients 8] [--chat-clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.sentences import chat_prompts, sentences  # noqa: E402
from bench.server import CHAT_GGUF, EMBED_DIR, ServerOptions, ServerProcess  # noqa: E402

MODELS = [{"name": "minilm-a", "source": str(EMBED_DIR), "backend": "torch", "threads": 1},
          {"name": "minilm-b", "source": str(EMBED_DIR), "backend": "torch", "threads": 1},
          {"name": "smol", "source": str(CHAT_GGUF), "backend": "torch", "dtype": "float32",
           "threads": 1, "max_concurrent": 4}]


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


async def main(args: argparse.Namespace) -> int:
    opts = ServerOptions(models=MODELS, extra={
        "memory_limits": {"cpu": args.budget}, "response_cache_bytes": 0,
        "load_timeout_s": 120})
    counts: collections.Counter[str] = collections.Counter()
    samples: list[str] = []

    def count(key: str, r: httpx.Response | None = None) -> None:
        counts[key] += 1
        if not key.endswith("200") and len(samples) < 5:
            samples.append(f"{key}: {r.text[:300] if r is not None else ''}")
    rss: list[tuple[float, int]] = []
    texts, prompts = sentences(), chat_prompts()
    with ServerProcess(opts, ROOT / "bench" / "results" / "soak-server.log") as server:
        end = time.monotonic() + args.minutes * 60
        start = time.monotonic()

        async def embedder(i: int, client: httpx.AsyncClient) -> None:
            n = i
            while time.monotonic() < end:
                body = {"model": f"minilm-{'ab'[(n // 50) % 2]}", "input": texts[n % len(texts)]}
                try:
                    r = await client.post("/v1/embeddings", json=body)
                    count(str(r.status_code), r)
                except httpx.HTTPError as exc:
                    count(type(exc).__name__)
                n += 1

        async def chatter(i: int, client: httpx.AsyncClient) -> None:
            n = i
            while time.monotonic() < end:
                body = {"model": "smol", "max_tokens": 16, "messages": [
                    {"role": "user", "content": prompts[n % len(prompts)]}]}
                try:
                    r = await client.post("/v1/chat/completions", json=body)
                    count(f"chat {r.status_code}", r)
                except httpx.HTTPError as exc:
                    count(f"chat {type(exc).__name__}")
                n += 1

        async def sampler() -> None:
            while time.monotonic() < end:
                rss.append((time.monotonic() - start, tree_rss(server.pid)))
                await asyncio.sleep(5)

        limits = httpx.Limits(max_connections=args.embed_clients + args.chat_clients + 2)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=300,
                                     limits=limits) as client:
            await asyncio.gather(sampler(), *(embedder(i, client)
                                              for i in range(args.embed_clients)),
                                 *(chatter(i, client) for i in range(args.chat_clients)))
            metrics = (await client.get("/metrics")).text
            cards = (await client.get("/v1/models")).json()["data"]
    evictions = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                    if line.startswith("hfserve_model_evictions_total{"))
    warm = [v for t, v in rss if 60 <= t < 120] or [v for _, v in rss[: len(rss) // 3]]
    last = [v for t, v in rss if t >= args.minutes * 60 - 60]
    drift = statistics.mean(last) / statistics.mean(warm) - 1
    lost = sum(v for k, v in counts.items() if not k.endswith("200"))
    print(json.dumps({"minutes": args.minutes, "answers": dict(counts), "lost": lost,
                      "lost_samples": samples,
                      "evictions": evictions, "rss_warm_mib": round(statistics.mean(warm) / 2**20),
                      "rss_last_minute_mib": round(statistics.mean(last) / 2**20),
                      "rss_drift": round(drift, 4),
                      "models": {c["id"]: {k: c.get(k) for k in (
                          "state", "evictions", "estimated_bytes", "measured_bytes")}
                          for c in cards}}, indent=1))
    return 0 if lost == 0 and abs(drift) <= 0.10 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--embed-clients", type=int, default=8)
    parser.add_argument("--chat-clients", type=int, default=2)
    parser.add_argument("--budget", default="900MiB",
                        help="CPU memory budget (holds SmolLM2 and one MiniLM)")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
