"""What a long prompt arriving does to the streams already running: R streams decode, then
one prompt of L tokens joins. Reported per prefill budget (the prompt tokens prefilled
between two decode steps: ``max_prefill_tokens``), alternated in one run: the running
streams' longest gap between two tokens while the long prompt is prefilled, their median gap
outside it, and the long request's time to first token.

``--backend torch``: the torch skill under the runtime's scheduler, SmolLM2-135M's
architecture with random weights (speed does not depend on them); a budget of at least L
prefills the prompt whole. ``--backend openvino``: SmolLM2 from its GGUF file through
hfserve's OpenVINO generation skill (openvino-genai's pipeline, which splits prompts at its
batched-token budget) under the pipeline worker, on the IR hfserve exported.

    .venv/bin/python bench/long_prompt.py                        # torch, CPU: 512 vs whole
    .venv/bin/python bench/long_prompt.py --backend openvino --budgets 512,2048
    python3 bench/long_prompt.py --device cuda --dtype bfloat16 --streams 64 --length 8192
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gpu_step import build, prompts  # noqa: E402
from bench.server import CACHE_DIR, CHAT_GGUF  # noqa: E402
from hfserve.runtime.generation.sequence import Delta  # noqa: E402
from hfserve.runtime.generation.stream import EventStream  # noqa: E402
from hfserve.runtime.generation.worker import GenerationRequest, GenerationWorker  # noqa: E402
from hfserve.types import SamplingParams  # noqa: E402


def torch_worker(args: argparse.Namespace, budget: int) -> tuple[GenerationWorker, int]:
    from hfserve.runtime.generation.scheduler import Scheduler

    if args.skill is None:
        args.rows, args.slots, args.repeat_kv = [args.streams + 1], \
            args.device.startswith("cuda"), False
        args.prefill = "auto"
        args.skill = skill = build(args)
        skill.max_context = args.length + 64
        skill.decode_tokens = lambda ids: " ".join(map(str, ids))   # no tokenizer: ids
        skill.eos_token_ids = frozenset()
    args.skill.prefill_budget = budget
    return (Scheduler("long", args.skill, max_concurrent=args.streams + 1, max_queue=8),
            args.skill.model.config.vocab_size)


def openvino_worker(args: argparse.Namespace, budget: int) -> tuple[GenerationWorker, int]:
    from hfserve.backends.placement import Placement
    from hfserve.model_config import ModelConfig
    from hfserve.registry.spec import build_spec
    from hfserve.runtime.generation.pipeline_worker import PipelineWorker
    from hfserve.skills.openvino_generation import OpenVINOGenerationSkill

    skill = OpenVINOGenerationSkill(build_spec(ModelConfig(source=str(args.gguf))))
    skill.load(Placement(device="cpu", dtype=args.dtype, threads=args.threads,
                         backend="openvino", options={
                             "cache_dir": CACHE_DIR, "max_concurrent": args.streams + 1,
                             "max_prefill_tokens": budget}))
    skill.max_context = max(skill.max_context, args.length + 64)
    return (PipelineWorker("long", skill, max_concurrent=args.streams + 1, max_queue=8),
            len(skill.tokenizer))


async def one_run(worker: GenerationWorker, vocab: int, args: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    stamps: list[list[float]] = [[] for _ in range(args.streams)]

    async def stream_of(i: int, prompt: list[int], max_tokens: int) -> list[float]:
        events = EventStream(loop)
        worker.submit(GenerationRequest(f"r{i}", prompt, SamplingParams(
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
        for i, task in enumerate(running):
            worker.abort(f"r{i}")                        # frees its cache, as a client would
            task.cancel()
        await asyncio.sleep(0.2)
        gaps_in, gaps_out = [], []
        for times in stamps:
            for a, b in zip(times, times[1:], strict=False):
                (gaps_in if b > submitted and a < first else gaps_out).append(b - a)
        return {"ttft_ms": 1e3 * (first - submitted), "max_gap_ms": 1e3 * max(gaps_in),
                "gap_p50_ms": 1e3 * statistics.median(gaps_out)}
    finally:
        await asyncio.to_thread(worker.stop)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("torch", "openvino"), default="torch")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--dtype", default=None, help="default: float32 (torch), bfloat16 (openvino)")
    p.add_argument("--threads", type=int, default=2, help="OpenVINO inference threads")
    p.add_argument("--streams", type=int, default=4, help="streams running when it arrives")
    p.add_argument("--length", type=int, default=2048, help="tokens of the long prompt")
    p.add_argument("--budgets", default=None,
                   help="prefill budgets, comma-separated (default: 512 and the whole prompt "
                   "for torch on a CPU, 8192 and whole on a GPU)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--gguf", type=Path, default=CHAT_GGUF)
    args = p.parse_args()
    args.dtype = args.dtype or ("float32" if args.backend == "torch" else "bfloat16")
    args.skill = None
    default = 8192 if args.device.startswith("cuda") else 512
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else \
        [default, args.length]
    make: Any = torch_worker if args.backend == "torch" else openvino_worker
    print(f"{args.backend} on {args.device if args.backend == 'torch' else 'CPU'} "
          f"{args.dtype}, {args.streams} streams running, one prompt of {args.length} "
          f"tokens joins")
    for _ in range(args.repeats):
        for budget in budgets:
            worker, vocab = make(args, budget)
            r = asyncio.run(one_run(worker, vocab, args))
            label = "whole" if budget >= args.length else f"parts of {budget}"
            print(f"  {label:>14}: running streams' longest gap {r['max_gap_ms']:8.1f} ms "
                  f"(median gap {r['gap_p50_ms']:.1f} ms), long prompt TTFT "
                  f"{r['ttft_ms']:8.1f} ms", flush=True)


if __name__ == "__main__":
    main()
