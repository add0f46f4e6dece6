"""What a model group costs per request: one-sentence embeddings at 16 clients sent to
MiniLM by its name and through a group whose only model it is (so the bandit's draw, the
reward bookkeeping and the group's response headers are all the difference), in one server,
alternating rounds so that both see the same machine. Prints each round and the ratio of
the medians.

    .venv/bin/python bench/routing.py [--seconds 15] [--rounds 3] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.load import embeddings_load  # noqa: E402
from bench.sentences import sentences  # noqa: E402
from bench.server import EMBED_DIR, ServerOptions, ServerProcess  # noqa: E402

MODEL, GROUP = "minilm", "embedders"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--no-cache", action="store_true",
                        help="response cache off: every request runs the model")
    args = parser.parse_args()
    extra = {"groups": [{"name": GROUP, "task": "embedding", "models": [MODEL]}],
             **({"response_cache_bytes": 0} if args.no_cache else {})}
    opts = ServerOptions(models=[{"name": MODEL, "source": str(EMBED_DIR)}], extra=extra)
    texts = sentences()
    rates: dict[str, list[float]] = {MODEL: [], GROUP: []}
    with ServerProcess(opts, ROOT / "bench" / "results" / "routing-server.log") as server:
        for round_ in range(args.rounds):
            for name in (MODEL, GROUP) if round_ % 2 == 0 else (GROUP, MODEL):
                out = asyncio.run(embeddings_load(
                    server.base_url, name, texts, concurrency=args.clients, per_request=1,
                    warmup=args.warmup, duration=args.seconds, server_pid=server.pid))
                rates[name].append(out["rate"])
                print(json.dumps({"round": round_, "model": name, "rate": out["rate"],
                                  "p50_ms": round(out["latency_p50_ms"], 1),
                                  "errors": out["errors"]}))
    direct, grouped = (statistics.median(rates[n]) for n in (MODEL, GROUP))
    print(f"direct {direct:.1f} sentences/s, through the group {grouped:.1f}: "
          f"{grouped / direct:.3f}x ({(1 - grouped / direct) * 100:+.1f}% cost)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
