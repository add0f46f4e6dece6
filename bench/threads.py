"""Both demo models in one server, busy at once: does giving each model all the CPU quota's
threads oversubscribe the cores, or is a budget divided among the models faster?

For each backend and thread split, one hfserve serves MiniLM and SmolLM2; embedding clients
(16 sentences a request) and chat streams (greedy, 32 tokens, ``ignore_eos``) run together
in one window, then each model alone. Run while the machine is otherwise idle:

    .venv/bin/python bench/threads.py [--backend openvino] [--splits 2,2 1,1] [--seconds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.load import chat_load, embeddings_load  # noqa: E402
from bench.sentences import chat_prompts, sentences  # noqa: E402
from bench.server import (  # noqa: E402
    CHAT_GGUF,
    CHAT_NAME,
    EMBED_DIR,
    EMBED_NAME,
    ServerOptions,
    ServerProcess,
)


async def phase(base: str, pid: int, embed: bool, chat: bool, seconds: float) -> dict:
    timing = {"warmup": 3.0, "duration": seconds, "server_pid": pid}
    jobs = {}
    if embed:
        jobs["sentences/s"] = embeddings_load(base, EMBED_NAME, sentences(512), concurrency=4,
                                              per_request=16, **timing)
    if chat:
        jobs["tokens/s"] = chat_load(base, CHAT_NAME, chat_prompts(32), concurrency=4,
                                     max_tokens=32, **timing)
    results = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    # Each load counts the other's client as "other": the smaller figure is the machine's.
    cpu = {"server %": round(max(r["server_cpu_pct"] for r in results.values())),
           "other %": round(min(r["other_cpu_pct"] for r in results.values()))}
    return {unit: round(r["rate"], 1) for unit, r in results.items()} | cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--dtype", default=None, help="both models (default: hfserve's)")
    parser.add_argument("--splits", nargs="+", default=["2,2", "1,1"],
                        help="MiniLM threads,SmolLM2 threads")
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    dtype = {"dtype": args.dtype} if args.dtype else {}
    for split in args.splits:
        embed_threads, chat_threads = (int(n) for n in split.split(","))
        models = [{"name": EMBED_NAME, "source": str(EMBED_DIR), "threads": embed_threads,
                   "backend": args.backend, **dtype},
                  {"name": CHAT_NAME, "source": str(CHAT_GGUF), "threads": chat_threads,
                   "backend": args.backend, "max_concurrent": 4, **dtype}]
        log = ROOT / "bench" / "results" / "threads-server.log"
        with ServerProcess(ServerOptions(models=models), log) as server:
            for name, embed, chat in (("together", True, True), ("MiniLM alone", True, False),
                                      ("SmolLM2 alone", False, True)):
                got = asyncio.run(phase(server.base_url, server.pid, embed, chat,
                                        args.seconds))
                print(f"{args.backend} threads {split:>4}  {name:<14} {got}", flush=True)


if __name__ == "__main__":
    main()
