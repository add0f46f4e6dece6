"""End-to-end throughput of hfserve against the same models run in-process and other servers.

Starts ``hfserve serve`` on a free local port with a generated config (all-MiniLM-L6-v2 and
SmolLM2-135M-Instruct), drives it with closed-loop async clients and stops it; then runs the
same models directly in this process, with torch and with OpenVINO (the backend hfserve
places them on when it is installed); then starts each peer server (Infinity,
``transformers serve`` without and with continuous batching) in its own virtual environment
and drives it with the same load. Never two of these at once. Prints one comparison table,
checks the targets and plots throughput against clients.

    .venv/bin/python bench/serve_bench.py [--quick] [--out bench/results/latest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import yaml  # noqa: E402

from bench import record, report  # noqa: E402
from bench.phases import (  # noqa: E402
    measure_server,
    peers_phase,
    raw_openvino_phase,
    raw_torch_phase,
)
from bench.sentences import chat_prompts, distinct_sentences  # noqa: E402
from bench.server import (  # noqa: E402
    CHAT_NAME,
    DEMO_CONFIG,
    EMBED_NAME,
    ServerOptions,
    ServerProcess,
)

EMBED_TEXTS = 160_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--plot", help="PNG of throughput against clients (default "
                   "docs/benchmarks.png, with --quick next to --out; '' to skip)")
    p.add_argument("--threads", type=int,
                   help="intra-op threads per model (default: none given, the server's own "
                        "default from the CPU quota, as `make serve` runs)")
    p.add_argument("--embed-threads", type=int, help="override --threads for MiniLM")
    p.add_argument("--chat-threads", type=int, help="override --threads for SmolLM2")
    p.add_argument("--backend", help="hfserve backend for both models: auto, torch, "
                   "openvino, onnxruntime (default: none given)")
    p.add_argument("--dtype", help="hfserve dtype for both models (default: none given, the "
                   "server's own choice for the checkpoint and CPU)")
    p.add_argument("--tuned", action="append", metavar="KEY=VALUE[,KEY=VALUE]",
                   help="an extra, labelled hfserve phase (chat runs) with these SmolLM2 "
                        "settings, e.g. int8=true or dtype=bfloat16,threads=2; repeatable "
                        "(default: int8=true; 'none' for no extra phase)")
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="sentences per request of the batched embeddings run, and the raw "
                        "batch cap (hfserve's own default is 32 too)")
    p.add_argument("--max-wait-ms", type=float, help="hfserve max_wait_ms (default: none "
                   "given)")
    p.add_argument("--max-concurrent", type=int, help="hfserve max_concurrent (default: none "
                   "given)")
    p.add_argument("--wrk-from", type=int, default=64,
                   help="one-sentence embeddings runs at this many clients or more are driven "
                        "by wrk, where the Python client would be the bottleneck (0: never)")
    p.add_argument("--embed-clients", default="1,16,64", help="comma-separated concurrencies")
    p.add_argument("--batch-clients", type=int, default=16,
                   help="clients for the 32-sentences-per-request run (0: skip)")
    p.add_argument("--chat-clients", default="1,8,32")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--duration", type=float, help="seconds measured per embedding run")
    p.add_argument("--chat-duration", type=float, help="seconds measured per chat run")
    p.add_argument("--peers", default="infinity,transformers-serve",
                   help="peer servers to compare with ('' for none)")
    p.add_argument("--skip-raw", action="store_true", help="no in-process baselines")
    p.add_argument("--skip-raw-torch", action="store_true",
                   help="no torch baselines (OpenVINO ones, which run unless --backend "
                        "names another backend, only)")
    p.add_argument("--wait-quiet", type=float,
                   help="before each run, wait up to this many seconds for the machine to "
                        "be idle (default 15, quick 5)")
    args = p.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3.0 if quick else 10.0)
    args.warmup = 1.0 if quick else 3.0
    args.chat_duration = args.chat_duration or (6.0 if quick else 15.0)
    args.chat_warmup = 3.0 if quick else 5.0
    # After the window, streams in flight may finish (full run) or are cut off (quick run).
    args.chat_drain = 1.0 if quick else 30.0
    args.raw_duration = 3.0 if quick else 10.0
    args.raw_warmup = 1.0 if quick else 3.0
    if args.wait_quiet is None:
        args.wait_quiet = 5.0 if quick else 15.0
    args.embed_threads = args.embed_threads or args.threads
    args.chat_threads = args.chat_threads or args.threads
    args.dtype = args.dtype or None
    # No server flag given: hfserve runs exactly what `make serve` runs.
    args.demo = not any(v is not None for v in (
        args.embed_threads, args.chat_threads, args.backend, args.dtype, args.max_wait_ms,
        args.max_concurrent))
    if args.tuned is None:
        args.tuned = [] if quick else ["int8=true"]
    args.tuned = [t for t in args.tuned if t and t != "none"]
    if args.plot is None:
        args.plot = str(args.out.with_suffix(".png") if quick
                        else ROOT / "docs" / "benchmarks.png")
    return args


def _setting(text: str):
    value = yaml.safe_load(text)
    return value if value is not None else text


def tuned_settings(spec: str) -> dict:
    """``int8=true,threads=2`` -> {"int8": True, "threads": 2} (YAML values)."""
    pairs = [part.split("=", 1) for part in spec.split(",") if part.strip()]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--tuned {spec!r}: expected KEY=VALUE[,KEY=VALUE]")
    return {k.strip(): _setting(v.strip()) for k, v in pairs}


def server_options(args: argparse.Namespace, tuned: dict | None = None) -> ServerOptions:
    """`make serve`'s configuration (examples/demo.yaml as it is) when no server flag is
    given, else the generated one with the flags; ``tuned``: settings of an extra phase,
    on SmolLM2 over the demo configuration."""
    if args.demo and tuned is None:
        return ServerOptions(config=DEMO_CONFIG)
    if args.demo:
        models = yaml.safe_load(DEMO_CONFIG.read_text())["models"]
        for m in models:
            if m["name"] == CHAT_NAME:
                m.update(tuned)
        return ServerOptions(models=models)
    return ServerOptions(embed_threads=args.embed_threads, chat_threads=args.chat_threads,
                         max_batch_size=args.max_batch_size,
                         max_wait_ms=args.max_wait_ms or 0.0,
                         max_concurrent=args.max_concurrent or 8, backend=args.backend or "auto",
                         dtype=args.dtype, chat_extra=tuned)


def server_phase(args: argparse.Namespace, texts: list[str], prompts: list[str],
                 log_path: Path, tuned: dict | None = None) -> dict:
    opts = server_options(args, tuned)
    out: dict = {"embeddings": [], "chat": [], "setup": "make serve (examples/demo.yaml)"
                 if opts.config else "generated config", "tuned": tuned}
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
        for m in out["models"]:
            print(f"  {m['id']}: {m.get('backend')} on {m.get('device')}, {m.get('dtype')}, "
                  f"threads {m.get('threads')}", flush=True)
        measure_server(srv, args, texts, prompts, out,
                       embed_model=None if tuned is not None else EMBED_NAME,
                       chat_model=CHAT_NAME, metrics=True)
    out["exit_code"] = srv.exit_code
    out["log_problems"] = srv.log_problems()[:50]
    return out


def same_as_server(args: argparse.Namespace, models: list[dict]) -> None:
    """The raw baselines run at the threads and precision the server chose for each model
    (what the CPU quota and the checkpoint gave it, when no flag did)."""
    by_name = {m["id"]: m for m in models}
    embed, chat = by_name.get(EMBED_NAME, {}), by_name.get(CHAT_NAME, {})
    args.embed_threads = args.embed_threads or embed.get("threads") or 2
    args.chat_threads = args.chat_threads or chat.get("threads") or 2
    args.embed_dtype = args.dtype or embed.get("dtype")
    args.chat_dtype = args.dtype or chat.get("dtype")


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    import importlib.metadata as md

    import torch

    versions = {}
    for dist in ("transformers", "openvino", "openvino-genai", "optimum-intel"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(), **versions}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Enough distinct sentences that no embeddings request of a phase repeats an input.
    texts, prompts = distinct_sentences(EMBED_TEXTS), chat_prompts(64)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.out.with_suffix(".server.log")
    results: dict = {**record.start(args),
                     "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv])}
    t0 = time.monotonic()
    if args.demo:
        print("hfserve phase: exactly `make serve` (examples/demo.yaml, no flags)", flush=True)
    else:
        print(f"hfserve phase (threads: embed {args.embed_threads}, chat {args.chat_threads}, "
              f"backend {args.backend}, dtype {args.dtype or 'default'})", flush=True)
    results["server"] = server_phase(args, texts, prompts, log_path)
    same_as_server(args, results["server"]["models"])
    print(f"raw baselines at the server's threads (embed {args.embed_threads}, chat "
          f"{args.chat_threads}), precision embed {args.embed_dtype}, chat {args.chat_dtype}",
          flush=True)
    results["tuned"] = []
    for spec in args.tuned:
        print(f"hfserve phase, tuned: SmolLM2 with {spec}", flush=True)
        results["tuned"].append(server_phase(
            args, texts, prompts, log_path.with_suffix(f".{len(results['tuned'])}.log"),
            tuned_settings(spec)))
    if not args.skip_raw and not args.skip_raw_torch:
        print("raw in-process phase, torch (no server running)", flush=True)
        results["raw"] = raw_torch_phase(args, texts, prompts, results["server"])
    if not args.skip_raw and args.backend in (None, "auto", "openvino"):
        print("raw in-process phase, OpenVINO (no server running)", flush=True)
        try:
            results["raw_openvino"] = raw_openvino_phase(args, texts, prompts,
                                                         results["server"])
        except (ImportError, RuntimeError) as exc:
            results["raw_openvino"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  OpenVINO baselines unavailable: {exc}", flush=True)
    if args.peers:
        print("peer servers", flush=True)
        results["peers"] = peers_phase(args, texts, prompts, log_path.parent / "peers")
    results["machine"] = machine()
    results["total_s"] = time.monotonic() - t0
    results["table"] = report.comparison(results)
    results["targets"] = report.targets(results)
    print()
    print(report.markdown(results["table"]))
    print()
    print(report.targets_markdown(results["targets"]))
    print()
    print(report.details_markdown(results))
    for line in report.checks(results):
        print(line)
    for server in [results["server"], *results["tuned"]]:
        server.pop("sample_embeddings", None)
    args.out.write_text(json.dumps(record.clean(results), indent=2))
    if args.plot:
        from bench.plot import plot

        plot(results, Path(args.plot))
        print(f"plot: {args.plot}")
    print(f"total {results['total_s']:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
