"""What hfserve's generation loop itself costs per token: the scheduler, batched sampling,
sequences with incremental detokenization (SmolLM2's real tokenizer) and event streams, and
with ``--process`` the model process, its pipe and the server-side reader too, all driving a
model that costs nothing. The rate is the ceiling the serving loop puts on generation on any
device: a GPU step can only be as fast as this lets it be.

N closed-loop streams, each asking for ``--tokens`` greedy tokens with ``ignore_eos`` and
asking again when its stream ends; tokens count when their delta reaches the reader, inside
a window after a warm-up. No HTTP: that is in ``serve_bench.py`` and ``gpu.py``.

    .venv/bin/python bench/loop_overhead.py                      # 1, 64, 256 streams
    .venv/bin/python bench/loop_overhead.py --process --streams 256
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
from bench.server import CHAT_GGUF  # noqa: E402
from hfserve.backends.placement import Placement  # noqa: E402
from hfserve.engines.torch_lm import sampling  # noqa: E402
from hfserve.model_config import ModelConfig  # noqa: E402
from hfserve.registry.spec import build_spec  # noqa: E402
from hfserve.runtime.generation.scheduler import Scheduler  # noqa: E402
from hfserve.runtime.generation.sequence import Delta, coalesce  # noqa: E402
from hfserve.runtime.generation.stream import EventStream  # noqa: E402
from hfserve.runtime.generation.worker import Finished, GenerationRequest  # noqa: E402
from hfserve.skills.base import GenerativeSkill  # noqa: E402
from hfserve.text.codec import HFTextCodec  # noqa: E402
from hfserve.types import Pick, SamplingParams, Task, TokenChoice  # noqa: E402

VOCAB = 1024          # logits rows are this wide: sampling stays cheap, as on a GPU
MAX_ROWS = 512        # most rows a step or a prefill asks for
TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun."


class FreeModel(HFTextCodec, GenerativeSkill):
    """Logits cost nothing: each step returns prepared rows whose greedy token walks through
    the tokens of a fixed sentence, so detokenization sees real text."""

    task = Task.TEXT_GENERATION

    def load(self, placement: Placement) -> None:
        import torch

        self.placement = placement
        self.eos_token_ids = self.load_tokenizer(self.spec)
        self.max_context = 1 << 16
        ids = [t for t in self.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
               if t < VOCAB] or [42]
        # Whole contiguous blocks: argmax over an expanded (stride 0) view is a slow path
        # that a GPU's logits never take.
        self.rows = []
        for token in ids:
            logits = torch.zeros(MAX_ROWS, VOCAB)
            logits[:, token] = 10.0
            self.rows.append(logits)
        self.max_prefill_batch, self.prefill_budget = 256, 1 << 16
        steps = placement.options.get("decode_steps")
        if steps:   # the scheduler as on a GPU's slots: steps fed on the "device", grouped
            self.overlap_steps = self.feeds_tokens = True
            self.decode_steps = int(steps)
        self._step = itertools.count()

    def _logits(self, n: int) -> Any:
        return self.rows[next(self._step) % len(self.rows)][:n]

    def prefill(self, prompts: list[list[int]], prompt_logprobs: list[int | None]):
        return [object() for _ in prompts], self._logits(len(prompts)), [None] * len(prompts)

    def decode(self, states: list[Any], last_tokens: list[int], fed: Any = None) -> Any:
        return self._logits(len(states))

    def sample_later(self, logits: Any, picks: list[Pick]) -> Any:
        return sampling.sample_later(logits, picks)

    def sample(self, logits: Any, picks: list[Pick]) -> list[TokenChoice]:
        return sampling.sample(logits, picks)

    def new_generator(self, seed: int | None) -> Any:
        return None


def make_worker(streams: int, process: bool, decode_steps: int | None = None) -> Any:
    spec = build_spec(ModelConfig(source=str(CHAT_GGUF)))
    placement = Placement(device="cpu", dtype="float32", backend="torch",
                          options={"decode_steps": decode_steps})
    if process:
        from hfserve.runtime.process.proxy import ProcessGenerator

        proxy = ProcessGenerator(spec, FreeModel, max_concurrent=streams, max_queue=4 * streams)
        proxy.load(placement)
        return proxy, proxy.worker("free", on_out_of_memory=lambda exc: None,
                                   on_exit=lambda reason: None)
    skill = FreeModel(spec)
    skill.load(placement)
    return skill, Scheduler("free", skill, max_concurrent=streams, max_queue=4 * streams)


async def drive(worker: Any, prompt_ids: list[int], streams: int, tokens: int,
                warmup: float, duration: float, model_pid: int | None = None,
                stop: list[str] | None = None) -> dict:
    loop = asyncio.get_running_loop()
    counts = {"tokens": 0, "chunks": 0, "requests": 0}
    start = time.perf_counter()
    window = (start + warmup, start + warmup + duration)
    keys = itertools.count()

    async def client() -> None:
        while time.perf_counter() < window[1]:
            events = EventStream(loop, combine=coalesce)
            params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True,
                                    stop=tuple(stop or ()))
            worker.submit(GenerationRequest(f"r{next(keys)}", list(prompt_ids), params),
                          events)
            async for event in events:
                now = time.perf_counter()
                inside = window[0] <= now <= window[1]
                if isinstance(event, Delta) and inside:
                    counts["tokens"] += len(event.tokens)
                    counts["chunks"] += 1
                elif isinstance(event, Finished) and inside:
                    counts["requests"] += 1

    cpu0 = time.process_time()
    model0 = process_seconds(model_pid) if model_pid else 0.0
    await asyncio.gather(*(client() for _ in range(streams)))
    cpu = time.process_time() - cpu0
    total = time.perf_counter() - start
    return {"streams": streams, "tokens_per_s": counts["tokens"] / duration,
            "tokens_per_chunk": counts["tokens"] / max(1, counts["chunks"]),
            "requests": counts["requests"], "server_process_cpu_pct": 100 * cpu / total,
            # The model process's CPU per token over the whole run (warm-up included).
            "model_us_per_token": 1e6 * (process_seconds(model_pid) - model0) / max(
                1, counts["tokens"] * total / duration) if model_pid else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", default="1,64,256", help="concurrent streams, comma-separated")
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--process", action="store_true", help="the model in a process of its own")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--decode-steps", type=int,
                   help="run the scheduler as on a GPU's CUDA-graph slots: steps fed on the "
                        "device, this many queued at a time from 64 streams on")
    p.add_argument("--stop", action="append", default=[],
                   help="a stop string every request carries (repeatable); one the model's "
                        "text never holds costs the search without ending anything")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.streams.split(",") if x.strip()]
    skill, worker = make_worker(max(counts), args.process, args.decode_steps)
    prompt = skill.encode_chat([{"role": "user", "content": "Write a short story."}], {})
    print(f"free model, {'own process' if args.process else 'in process'}, "
          f"{args.tokens} tokens per stream"
          f"{f', decode steps {args.decode_steps}' if args.decode_steps else ''}"
          f"{f', stop strings {args.stop}' if args.stop else ''}", flush=True)
    try:
        for streams in counts:
            r = asyncio.run(drive(worker, prompt, streams, args.tokens, args.warmup,
                                  args.duration,
                                  model_pid=skill.process.pid if args.process else None,
                                  stop=args.stop))
            model = (f", model process {r['model_us_per_token']:.1f} us CPU per token"
                     if args.process else "")
            print(f"  {streams:>4} streams: {r['tokens_per_s']:>9,.0f} tokens/s, "
                  f"{r['tokens_per_chunk']:.2f} tokens/chunk, {r['requests']} requests, "
                  f"this process {r['server_process_cpu_pct']:.0f}% CPU{model}", flush=True)
    finally:
        worker.stop()
        if args.process:
            skill.unload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
