"""Both demo models in one server, busy at once: does giving each model all the CPU quota's
threads oversubscribe the cores, or is a budget divided among the models faster?

One hfserve per thread split (MiniLM threads,SmolLM2 threads), all started first and idle
while another is measured. Embedding clients (16 sentences a request) and chat streams
(greedy, 32 tokens, ``ignore_eos``) run together, then each model alone, the splits taking
turns window by window for ``--rounds``, so that other work on the machine falls on all of
them alike. Each window waits up to ``--wait`` s for an idle machine; each figure is the
median over the windows in which other processes used under ``--busy`` % of one core
("windows": how many), or over all windows where none was that quiet.

    .venv/bin/python bench/threads.py [--backend openvino] [--splits 2,2 1,1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cpu import wait_quiet  # noqa: E402
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

PHASES = (("together", True, True), ("MiniLM alone", True, False),
          ("SmolLM2 alone", False, True))


async def phase(base: str, pid: int, embed: bool, chat: bool, seconds: float) -> dict:
    timing = {"warmup": 1.0, "duration": seconds, "server_pid": pid}
    jobs = {}
    if embed:
        jobs["sentences/s"] = embeddings_load(base, EMBED_NAME, sentences(512), concurrency=4,
                                              per_request=16, **timing)
    if chat:
        jobs["tokens/s"] = chat_load(base, CHAT_NAME, chat_prompts(32), concurrency=4,
                                     max_tokens=32, **timing)
    results = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    # Each load counts the other's client as "other": the smaller figure is the machine's.
    return {unit: r["rate"] for unit, r in results.items()} | {
        "other %": min(r["other_cpu_pct"] for r in results.values())}


def models(split: str, backend: str, dtype: str | None) -> list[dict]:
    embed_threads, chat_threads = (int(n) for n in split.split(","))
    extra = {"backend": backend, **({"dtype": dtype} if dtype else {})}
    return [{"name": EMBED_NAME, "source": str(EMBED_DIR), "threads": embed_threads, **extra},
            {"name": CHAT_NAME, "source": str(CHAT_GGUF), "threads": chat_threads,
             "max_concurrent": 4, **extra}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--dtype", default=None, help="both models (default: hfserve's)")
    parser.add_argument("--splits", nargs="+", default=["2,2", "1,1"])
    parser.add_argument("--seconds", type=float, default=5.0, help="one window")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wait", type=float, default=60.0)
    parser.add_argument("--busy", type=float, default=25.0)
    args = parser.parse_args()
    got: dict[tuple[str, str], list[dict]] = {}
    with contextlib.ExitStack() as stack:
        servers = {split: stack.enter_context(ServerProcess(
            ServerOptions(models=models(split, args.backend, args.dtype)),
            ROOT / "bench" / "results" / f"threads-{split}.log")) for split in args.splits}
        for _ in range(args.rounds):
            for name, embed, chat in PHASES:
                for split, server in servers.items():
                    wait_quiet(args.wait)
                    got.setdefault((split, name), []).append(asyncio.run(
                        phase(server.base_url, server.pid, embed, chat, args.seconds)))
    for (split, name), runs in got.items():
        quiet = [r for r in runs if r["other %"] < args.busy] or runs
        medians = {key: round(statistics.median(r[key] for r in quiet), 1) for key in runs[0]}
        print(f"{args.backend} {args.dtype or 'default dtype'} threads {split:>4}  "
              f"{name:<14} {medians} windows {len(quiet)}/{len(runs)}")


if __name__ == "__main__":
    main()
