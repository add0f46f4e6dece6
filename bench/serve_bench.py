"""End-to-end throughput of hfserve against the same models run in-process.

Starts ``hfserve serve`` on a free local port with a generated config (all-MiniLM-L6-v2 and
SmolLM2-135M-Instruct), drives it with closed-loop async clients, stops it, then runs the
same models directly with transformers in this process (never both at once) and prints
server / raw ratios side by side.

    .venv/bin/python bench/serve_bench.py [--quick] [--out bench/results/latest.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench import report  # noqa: E402
from bench.cpu import wait_quiet  # noqa: E402
from bench.load import chat_load, embeddings_load  # noqa: E402
from bench.sentences import chat_prompts, sentences  # noqa: E402
from bench.server import CHAT_NAME, EMBED_NAME, ServerOptions, ServerProcess  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run (about 1-2 min)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads per model, server and raw alike (default 1)")
    p.add_argument("--embed-threads", type=int, help="override --threads for MiniLM")
    p.add_argument("--chat-threads", type=int, help="override --threads for SmolLM2")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--max-concurrent", type=int, default=8)
    p.add_argument("--embed-clients", default="1,16,64", help="comma-separated concurrencies")
    p.add_argument("--batch-clients", type=int, default=16,
                   help="clients for the 32-sentences-per-request run (0: skip)")
    p.add_argument("--chat-clients", default="1,8")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--duration", type=float, help="seconds measured per embedding run")
    p.add_argument("--chat-duration", type=float, help="seconds measured per chat run")
    p.add_argument("--skip-raw", action="store_true", help="server runs only")
    p.add_argument("--wait-quiet", type=float,
                   help="before each run, wait up to this many seconds for the machine to "
                        "be idle (default 15, quick 5)")
    args = p.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3.0 if quick else 10.0)
    args.warmup = 1.0 if quick else 3.0
    args.chat_duration = args.chat_duration or (6.0 if quick else 20.0)
    args.chat_warmup = 3.0 if quick else 6.0
    # After the window, streams in flight may finish (full run) or are cut off (quick run).
    args.chat_drain = 1.0 if quick else 45.0
    args.raw_duration = 3.0 if quick else 10.0
    if args.wait_quiet is None:
        args.wait_quiet = 5.0 if quick else 15.0
    args.embed_threads = args.embed_threads or args.threads
    args.chat_threads = args.chat_threads or args.threads
    return args


def batch_stats(client: httpx.Client, model: str) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram for ``model``."""
    text = client.get("/metrics").text
    values = {}
    for kind in ("sum", "count"):
        m = re.search(rf'^hfserve_batch_size_{kind}{{model="{re.escape(model)}"}} (\S+)$',
                      text, re.M)
        values[kind] = float(m.group(1)) if m else 0.0
    return values["sum"], values["count"]


def run_phase(srv: ServerProcess, model: str, coro_fn, label: str, quiet_s: float) -> dict:
    idle = wait_quiet(quiet_s)
    with httpx.Client(base_url=srv.base_url, timeout=30) as client:
        s0, n0 = batch_stats(client, model)
        result = asyncio.run(coro_fn())
        s1, n1 = batch_stats(client, model)
    result["mean_batch_size"] = (s1 - s0) / (n1 - n0) if n1 > n0 else None
    result["server_alive"] = srv.alive()
    result["machine_busy_before_pct"] = idle
    print(f"  {label}: {result['rate']:,.1f} {result['unit']}, errors {result['errors']}, "
          f"other load {result['other_cpu_pct']:.0f}%"
          + (f", mean batch {result['mean_batch_size']:.1f}"
             if result["mean_batch_size"] else ""), flush=True)
    if not srv.alive():
        raise RuntimeError(f"hfserve died during {label}:\n{srv.log_tail()}")
    return result


def server_phase(args: argparse.Namespace, texts: list[str], prompts: list[str],
                 log_path: Path) -> dict:
    opts = ServerOptions(embed_threads=args.embed_threads, chat_threads=args.chat_threads,
                         max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                         max_concurrent=args.max_concurrent)
    out: dict = {"embeddings": [], "chat": []}
    with ServerProcess(opts, log_path) as srv:
        print(f"hfserve ready on {srv.base_url} in {srv.startup_s:.1f}s", flush=True)
        out["startup_s"] = srv.startup_s
        with httpx.Client(base_url=srv.base_url, timeout=120) as client:
            out["models"] = client.get("/v1/models").json().get("data", [])
            emb = client.post("/v1/embeddings", json={"model": EMBED_NAME, "input": texts[:8]})
            emb.raise_for_status()
            out["sample_embeddings"] = [d["embedding"] for d in emb.json()["data"]]
            chat = client.post("/v1/chat/completions", json={
                "model": CHAT_NAME, "max_tokens": args.max_tokens, "temperature": 0,
                "ignore_eos": True, "messages": [{"role": "user", "content": prompts[0]}]})
            chat.raise_for_status()
            out["sample_chat"] = chat.json()["choices"][0]["message"]["content"]
        pid = srv.pid
        common = dict(warmup=args.warmup, duration=args.duration, server_pid=pid)
        jobs = [(c, 1) for c in parse_list(args.embed_clients)]
        if args.batch_clients:
            jobs.append((args.batch_clients, args.max_batch_size))
        for clients, per in jobs:
            out["embeddings"].append(run_phase(
                srv, EMBED_NAME, lambda c=clients, n=per: embeddings_load(
                    srv.base_url, EMBED_NAME, texts, concurrency=c, per_request=n, **common),
                f"embeddings c={clients} x{per}", args.wait_quiet))
        for clients in parse_list(args.chat_clients):
            out["chat"].append(run_phase(
                srv, CHAT_NAME, lambda c=clients: chat_load(
                    srv.base_url, CHAT_NAME, prompts, concurrency=c, max_tokens=args.max_tokens,
                    warmup=args.chat_warmup, duration=args.chat_duration, server_pid=pid,
                    drain=args.chat_drain),
                f"chat c={clients}", args.wait_quiet))
    out["exit_code"] = srv.exit_code
    out["log_problems"] = srv.log_problems()[:50]
    return out


def raw_phase(args: argparse.Namespace, texts: list[str], prompts: list[str],
              server: dict) -> dict:
    from bench.raw import RawEmbedder, RawGenerator

    out: dict = {}
    embedder = RawEmbedder(args.embed_threads)
    for batch in (args.max_batch_size, 1):
        wait_quiet(args.wait_quiet)
        out[f"embeddings_b{batch}"] = r = embedder.throughput(texts, batch, args.raw_duration)
        print(f"  raw embeddings batch {batch}: {r['rate']:,.1f} sentences/s, "
              f"other load {r['other_cpu_pct']:.0f}%", flush=True)
    mine = embedder.embed(texts[:8])
    theirs = np.asarray(server["sample_embeddings"], dtype=np.float32)
    out["embedding_min_cosine"] = float(np.min(np.sum(mine * theirs, axis=1)))
    del embedder
    gc.collect()
    gen = RawGenerator(args.chat_threads)
    out["sample_chat"] = gen.text(prompts[0], args.max_tokens)
    out["chat_text_identical"] = out["sample_chat"] == server["sample_chat"]
    for clients in parse_list(args.chat_clients):
        wait_quiet(args.wait_quiet)
        out[f"generate_b{clients}"] = r = gen.throughput(
            prompts, clients, args.max_tokens, args.raw_duration * (1 if clients == 1 else 2))
        print(f"  raw generate batch {clients}: {r['rate']:,.1f} tokens/s, "
              f"other load {r['other_cpu_pct']:.0f}%", flush=True)
    return out


def clean(value):
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def parse_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import torch

    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts, prompts = sentences(2048), chat_prompts(64)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.out.with_suffix(".server.log")
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results: dict = {"config": config, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv])}
    t0 = time.monotonic()
    print(f"server phase (threads: embed {args.embed_threads}, chat {args.chat_threads})",
          flush=True)
    results["server"] = server_phase(args, texts, prompts, log_path)
    if not args.skip_raw:
        print("raw in-process phase (server stopped)", flush=True)
        results["raw"] = raw_phase(args, texts, prompts, results["server"])
    results["machine"] = machine()
    results["total_s"] = time.monotonic() - t0
    results["table"] = report.rows(results)
    table = report.markdown(results["table"])
    print()
    print(table)
    raw = results.get("raw", {})
    if raw:
        print(f"\nembedding agreement server vs raw: min cosine "
              f"{raw['embedding_min_cosine']:.6f}; greedy chat text identical: "
              f"{raw['chat_text_identical']}")
    problems = results["server"]["log_problems"]
    print(f"server log: {log_path} ({len(problems)} warning/error lines)")
    for line in problems[:10]:
        print("  ", line[:200])
    print(f"total {results['total_s']:.0f}s; results in {args.out}")
    results["server"].pop("sample_embeddings", None)
    args.out.write_text(json.dumps(clean(results), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
