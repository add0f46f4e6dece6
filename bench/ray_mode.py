"""Ray Serve mode against the single process, side by side in one run: the same two models
(MiniLM and SmolLM2, one replica each) served by ``hfserve serve`` and by ``hfserve serve
--ray`` (a local Ray instance: an ingress deployment and one deployment per model), each
driven by ``bench/load.py``'s closed-loop clients: chat streams at 8 clients and one-sentence
embeddings at 64. Prints each rate and Ray's as a ratio of the single process's; what Ray
adds is the hop from the ingress to the model's replica (and its object serialization).

    .venv/bin/python bench/ray_mode.py                  # 20 s per workload
    .venv/bin/python bench/ray_mode.py --seconds 3 --warmup 1   # a quick check that it works
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.load import chat_load, embeddings_load  # noqa: E402
from bench.sentences import chat_prompts, sentences  # noqa: E402
from bench.server import CHAT_NAME, EMBED_NAME, ServerOptions, ServerProcess  # noqa: E402


class RayServer(ServerProcess):
    """The same config served with ``--ray``."""

    name = "hfserve --ray"

    def command(self) -> list[str]:
        return [*super().command(), "--ray"]


async def measure(server: ServerProcess, args: argparse.Namespace) -> dict:
    chat = await chat_load(server.base_url, CHAT_NAME, chat_prompts(),
                           concurrency=args.chat_clients, max_tokens=args.max_tokens,
                           warmup=args.warmup, duration=args.seconds, server_pid=server.pid)
    embed = await embeddings_load(server.base_url, EMBED_NAME, sentences(),
                                  concurrency=args.embed_clients, per_request=1,
                                  warmup=args.warmup, duration=args.seconds,
                                  server_pid=server.pid)
    return {"chat": chat, "embeddings": embed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per workload")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--chat-clients", type=int, default=8)
    parser.add_argument("--embed-clients", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per model")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    opts = ServerOptions(embed_threads=args.threads, chat_threads=args.threads,
                         backend=args.backend, dtype="float32", max_concurrent=args.chat_clients)
    logs = ROOT / ".cache" / "bench-logs"
    results: dict[str, dict] = {}
    for key, kind in (("single", ServerProcess), ("ray", RayServer)):
        with kind(opts, logs / f"ray_mode-{key}.log") as server:
            print(f"{server.name}: ready in {server.startup_s:.1f}s", flush=True)
            results[key] = asyncio.run(measure(server, args))
    for workload, unit, latency in (("chat", "tokens/s", "ttft_p50_ms"),
                                    ("embeddings", "sentences/s", "latency_p50_ms")):
        single, ray = results["single"][workload], results["ray"][workload]
        ratio = ray["rate"] / single["rate"] if single["rate"] else float("nan")
        print(f"{workload:>10}: single {single['rate']:8.1f} {unit}, ray {ray['rate']:8.1f} "
              f"{unit} (x{ratio:.2f}); {latency} {single[latency]:.1f} vs "
              f"{ray[latency]:.1f}; errors {single['errors']} / {ray['errors']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    failed = any(results[k][w]["errors"] or not results[k][w]["rate"]
                 for k in results for w in results[k])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
