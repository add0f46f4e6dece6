"""What a long prompt arriving does to the streams already running: R streams decode on the
torch skill (SmolLM2-135M's architecture, random weights: speed does not depend on them) under
the runtime's scheduler, then one prompt of L tokens joins. Reported per mode, in one run:
the running streams' longest gap between two tokens while the long prompt is prefilled, their
median gap outside it, and the long request's time to first token.

Modes: ``parts`` (hfserve's default: a prompt over the prefill budget goes in parts, one
between two decode steps) and ``whole`` (the same skill with chunked prefill off).

    .venv/bin/python bench/long_prompt.py                        # CPU, 4 streams, 2,048 tokens
    python3 bench/long_prompt.py --device cuda --dtype bfloat16 --streams 64 --length 16384
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gpu_step import build, prompts  # noqa: E402
from bench.server import CHAT_GGUF  # noqa: E402
from hfserve.runtime.scheduler import GenerationRequest, Scheduler  # noqa: E402
from hfserve.runtime.sequence import Delta  # noqa: E402
from hfserve.runtime.stream import EventStream  # noqa: E402
from hfserve.types import SamplingParams  # noqa: E402


async def one_run(skill, args: argparse.Namespace, chunked: bool) -> dict:
    skill.chunked_prefill = chunked
    scheduler = Scheduler("long", skill, max_concurrent=args.streams + 1, max_queue=8)
    loop = asyncio.get_running_loop()
    vocab = skill.model.config.vocab_size
    stamps: list[list[float]] = [[] for _ in range(args.streams)]

    async def stream_of(i: int, prompt: list[int], max_tokens: int) -> list[float]:
        events = EventStream(loop)
        scheduler.submit(GenerationRequest(f"r{i}", prompt, SamplingParams(
            temperature=0, max_tokens=max_tokens, ignore_eos=True)), events)
        got = stamps[i] if i < args.streams else []
        async for event in events:
            if isinstance(event, Delta) and event.tokens:
                got.append(time.perf_counter())
        return got

    try:
        running = [asyncio.create_task(stream_of(i, p, 100_000)) for i, p in enumerate(
            prompts(args.streams, 32, vocab, seed=1))]
        while min(len(s) for s in stamps) < 20:          # every stream well under way
            for task in running:
                if task.done():
                    task.result()                         # a failed stream: its error
                    raise RuntimeError("a running stream ended early")
            await asyncio.sleep(0.01)
        submitted = time.perf_counter()
        long = await stream_of(args.streams, prompts(1, args.length, vocab, seed=2)[0], 2)
        first = long[0]
        await asyncio.sleep(0.5)                          # a little decoding after it
        for task in running:
            task.cancel()
        gaps_in, gaps_out = [], []
        for times in stamps:
            for a, b in zip(times, times[1:], strict=False):
                (gaps_in if b > submitted and a < first else gaps_out).append(b - a)
        return {"mode": "parts" if chunked else "whole", "ttft_ms": 1e3 * (first - submitted),
                "max_gap_ms": 1e3 * max(gaps_in), "gap_p50_ms": 1e3 * statistics.median(
                    gaps_out)}
    finally:
        await asyncio.to_thread(scheduler.stop)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--streams", type=int, default=4, help="streams running when it arrives")
    p.add_argument("--length", type=int, default=2048, help="tokens of the long prompt")
    p.add_argument("--gguf", type=Path, default=CHAT_GGUF)
    args = p.parse_args()
    args.rows, args.slots, args.repeat_kv = [args.streams + 1], \
        args.device.startswith("cuda"), False
    skill = build(args)
    skill.max_context = args.length + 64
    skill.decode_tokens = lambda ids: " ".join(map(str, ids))   # no tokenizer: ids as text
    skill.eos_token_ids = frozenset()
    print(f"{args.device} {args.dtype}, {args.streams} streams running, one prompt of "
          f"{args.length} tokens joins (prefill budget {skill.prefill_budget})")
    for chunked in (True, False, True, False):
        r = asyncio.run(one_run(skill, args, chunked))
        print(f"  {r['mode']:>5}: running streams' longest gap {r['max_gap_ms']:8.1f} ms "
              f"(median gap {r['gap_p50_ms']:.1f} ms), long prompt TTFT "
              f"{r['ttft_ms']:8.1f} ms", flush=True)


if __name__ == "__main__":
    main()
