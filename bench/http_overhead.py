"""What hfserve's HTTP side costs per streamed token: the server process (uvicorn, FastAPI,
middleware, SSE rendering, event delivery and the reader of the model process's pipe) while
generation runs in a process of its own, as on a GPU, driving ``loop_overhead.FreeModel``
(logits that cost nothing) paced to one decode step per ``--step-ms``, like a GPU's step,
so that each stream gets about one token per chunk as it would there. On a GPU this process
has to keep up with every token the model makes; here its CPU time per token is measured
directly, so changes to the HTTP path can be compared on any machine.

The server is this script started with ``--serve``: hfserve's own app and config, with the
free model standing in for the generation skill. Clients are ``bench/load.py``'s chat
clients (aiohttp, streaming, ``ignore_eos``).

    .venv/bin/python bench/http_overhead.py                    # 64 and 256 streams
    .venv/bin/python bench/http_overhead.py --streams 256 --client-procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.cpu import process_seconds  # noqa: E402
from bench.load import chat_load  # noqa: E402
from bench.loop_overhead import FreeModel  # noqa: E402
from bench.server import CHAT_GGUF, ManagedProcess  # noqa: E402

MODEL = "free"
STEP_ENV = "HFSERVE_BENCH_STEP_MS"     # read in the model process, which inherits it


class PacedFreeModel(FreeModel):
    """FreeModel whose decode step takes at least ``STEP_ENV`` milliseconds."""

    def decode(self, states: list[Any], last_tokens: list[int]) -> Any:
        time.sleep(float(os.environ.get(STEP_ENV, "0")) / 1000)
        return super().decode(states, last_tokens)


def serve(port: int, max_concurrent: int) -> None:
    """hfserve with the paced free model as the only generation skill, in a model process
    of its own."""
    import uvicorn

    import hfserve.runtime.lifecycle.skill_table as skill_table
    from bench.http_overhead import PacedFreeModel as paced  # pickled by this module path
    from hfserve.api.app import create_app
    from hfserve.config import Settings
    from hfserve.model_config import ModelConfig

    skill_table.skill_classes = lambda task: [paced]
    settings = Settings(models=[ModelConfig(
        source=str(CHAT_GGUF), name=MODEL, device="cpu", backend="torch", own_process=True,
        max_concurrent=max_concurrent, max_queue=4 * max_concurrent)])
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


class FreeServer(ManagedProcess):
    name = "hfserve (free model)"
    ready_path = "/ready"

    def __init__(self, log_path: Path, max_concurrent: int, step_ms: float) -> None:
        super().__init__(log_path)
        self.max_concurrent, self.step_ms = max_concurrent, step_ms

    def env(self) -> dict[str, str]:
        return {**super().env(), STEP_ENV: str(self.step_ms)}

    def command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--serve",
                "--port", str(self.port), "--max-concurrent", str(self.max_concurrent)]


async def measure(srv: FreeServer, streams: int, tokens: int, duration: float,
                  client_procs: int) -> dict:
    """Rate, and CPU seconds of the server process alone (not its model process) per token
    over the window."""
    marks: list[float] = []
    result = await chat_load(srv.base_url, MODEL, ["Say something."], concurrency=streams,
                             max_tokens=tokens, warmup=3.0, duration=duration,
                             server_pid=srv.proc.pid, processes=client_procs,
                             at_start=lambda: marks.append(process_seconds(srv.proc.pid)))
    # Read after the drain too (at most chat_load's 1 s), so a little high.
    http_cpu = process_seconds(srv.proc.pid) - marks[0]
    result["http_us_per_token"] = 1e6 * http_cpu / max(1.0, result["rate"] * duration)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", default="64,256", help="concurrent streams, comma-separated")
    p.add_argument("--tokens", type=int, default=128, help="tokens per request")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    p.add_argument("--step-ms", type=float, default=10.0, help="decode step time of the model")
    p.add_argument("--client-procs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--max-concurrent", type=int, default=256, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.port, args.max_concurrent)
        return 0
    counts = [int(c) for c in args.streams.split(",")]
    log = ROOT / "bench" / "results" / "http_overhead.server.log"
    with FreeServer(log, max(counts), args.step_ms) as srv:
        print(f"free model in its own process, {args.step_ms:g} ms per step; clients in "
              f"{args.client_procs} process(es), {args.tokens} tokens per request", flush=True)
        for streams in counts:
            r = asyncio.run(measure(srv, streams, args.tokens, args.duration,
                                    args.client_procs))
            print(f"  {streams:4d} streams: {r['rate']:9,.0f} tokens/s, server process "
                  f"{r['http_us_per_token']:.1f} us CPU per token, "
                  f"{r['tokens_per_chunk']:.2f} tokens/chunk, TTFT p50 {r['ttft_p50_ms']:.0f} ms, "
                  f"ITL p50 / p95 / max {r['itl_p50_ms']:.1f} / {r['itl_p95_ms']:.1f} / "
                  f"{r['itl_max_ms']:.0f} ms, errors {r['errors']}, "
                  f"CPU % server tree / clients {r['server_cpu_pct']:.0f} / "
                  f"{r['client_cpu_pct']:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
