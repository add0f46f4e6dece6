"""What API keys and rate limiting cost per request: one-sentence embeddings (MiniLM) at 64
clients against a server without keys and against the same server with a key (salted hash,
constant-time check, scopes) and in-process rate limits high enough never to refuse, in
alternating rounds. Prints each round and the ratio of the medians (target: at most 5%
lost), in requests/s and in the server's CPU milliseconds per request: on a saturated server
throughput is its cores over its CPU per request, and CPU per request barely moves when other
work shares the machine, where requests/s swing by tens of percent.

    .venv/bin/python bench/auth_overhead.py [--seconds 15] [--rounds 3] [--clients 64]
                                            [--client wrk] [--no-cache]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import load, wrk  # noqa: E402
from bench.cpu import tree_seconds  # noqa: E402
from bench.sentences import sentences  # noqa: E402
from bench.server import EMBED_DIR, ServerOptions, ServerProcess  # noqa: E402

MODEL = "minilm"
KEY = secrets.token_urlsafe(32)
SECURED = {"keys": [{"id": "bench", "key": KEY, "rpm": 10_000_000, "tpm": 10_000_000_000}],
           "rate_limit_rpm": 10_000_000}


def run(extra: dict | None, args: argparse.Namespace, texts: list[str],
        log: Path) -> tuple[float, float]:
    """Requests/s and the server's CPU milliseconds per request of one measured run."""
    opts = ServerOptions(models=[{"name": MODEL, "source": str(EMBED_DIR)}], extra=extra)
    load.HEADERS.clear()
    if extra and "keys" in extra:
        load.HEADERS["Authorization"] = f"Bearer {KEY}"
    with ServerProcess(opts, log) as server:
        if args.client == "wrk":
            wrk.embeddings(server.base_url, MODEL, texts, connections=args.clients,
                           seconds=args.warmup, headers=load.HEADERS)
            cpu = tree_seconds(server.pid)
            out = wrk.embeddings(server.base_url, MODEL, texts, connections=args.clients,
                                 seconds=args.seconds, headers=load.HEADERS)
            out["server_cpu_s"] = tree_seconds(server.pid) - cpu
        else:
            out = asyncio.run(load.embeddings_load(
                server.base_url, MODEL, texts, concurrency=args.clients, per_request=1,
                warmup=args.warmup, duration=args.seconds, server_pid=server.pid))
    if out["errors"]:
        raise SystemExit(f"errors: {out.get('error_samples') or out.get('output')}")
    # The aiohttp load reports the server's CPU as a share of one core over the window.
    cpu_s = out.get("server_cpu_s", out.get("server_cpu_pct", 0.0) / 100 * args.seconds)
    return out["rate"], 1e3 * cpu_s / max(out["rate"] * args.seconds, 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="seconds of load before measuring: the response cache fills "
                             "over the first ten or so, and the rate climbs with it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--client", choices=("python", "wrk"), default="python",
                        help="load generator: bench/load.py's aiohttp clients, or wrk")
    parser.add_argument("--no-cache", action="store_true",
                        help="response cache off: every request runs the model")
    args = parser.parse_args()
    off = {"response_cache_bytes": 0} if args.no_cache else {}
    texts = sentences()
    logs = ROOT / "bench" / "results"
    logs.mkdir(parents=True, exist_ok=True)
    rates: dict[str, list[float]] = {"open": [], "keys": []}
    cpu_ms: dict[str, list[float]] = {"open": [], "keys": []}
    for round_ in range(args.rounds):
        for name in ("open", "keys") if round_ % 2 == 0 else ("keys", "open"):
            rate, ms = run({**SECURED, **off} if name == "keys" else off or None, args, texts,
                           logs / f"auth-{name}.log")
            rates[name].append(rate)
            cpu_ms[name].append(ms)
            print(json.dumps({"round": round_, "server": name, "rate": round(rate, 1),
                              "server_cpu_ms_per_request": round(ms, 3)}))
    plain, secured = (statistics.median(rates[n]) for n in ("open", "keys"))
    print(f"without keys {plain:.1f} sentences/s, with a key and rate limits {secured:.1f}: "
          f"{secured / plain:.3f}x ({(1 - secured / plain) * 100:+.1f}% cost)")
    plain, secured = (statistics.median(cpu_ms[n]) for n in ("open", "keys"))
    print(f"server CPU per request: without keys {plain:.3f} ms, with {secured:.3f} ms: "
          f"{(secured / plain - 1) * 100:+.1f}% cost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
