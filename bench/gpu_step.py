"""Where a generation step's time goes on one device, without HTTP or the server loop: the
torch skill's prefill of G prompts (at fixed shapes replayed as CUDA graphs, or eager), and
its decode step over R running rows (fixed cache slots replayed as CUDA graphs on CUDA), split
into the host's part and the wait for the device. SmolLM2-135M's architecture (config from the
GGUF file) with random bfloat16 weights: speed does not depend on the weights.

    python3 bench/gpu_step.py                                  # CUDA
    python3 bench/gpu_step.py --device cpu --rows 1,4 --groups 1,4 --steps 3   # dry run
    python3 bench/gpu_step.py --rows 1,256 --groups 8 --compile   # torch.compile'd forward

Per row count: ``host ms`` is the decode call plus queueing the sampling (what the server's
loop thread spends before it can do other work), ``step ms`` the same until the chosen
tokens are on the host; ``device ms`` is the device's own time for that span (CUDA events).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.server import CHAT_GGUF  # noqa: E402
from hfserve.backends.placement import BackendOptions, Placement  # noqa: E402
from hfserve.engines.torch_lm import sampling  # noqa: E402
from hfserve.skills.generation import GenerationSkill, _cache_kwarg  # noqa: E402
from hfserve.types import Family, ModelSpec, Pick, SamplingParams, Task  # noqa: E402

GREEDY = SamplingParams(temperature=0)


def build(args: argparse.Namespace) -> GenerationSkill:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(args.gguf.parent), gguf_file=args.gguf.name)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype).to(args.device).eval()
    if args.compile:
        model.forward = torch.compile(model.forward, mode=args.compile_mode)
    spec = ModelSpec(name="step", source="step", path=args.gguf.parent,
                     architecture=config.architectures[0] if config.architectures else "",
                     model_type=config.model_type, family=Family.DECODER_ONLY,
                     task=Task.TEXT_GENERATION, tasks=(Task.TEXT_GENERATION,))
    skill = GenerationSkill(spec)
    skill.model = model
    options = {"max_concurrent": max(args.rows)}
    if args.slots:
        options["cuda_graphs"] = True
    if args.prefill != "auto":
        options["prefill_graphs"] = args.prefill == "fixed"
    if args.repeat_kv:   # transformers' own SDPA attention, key/value heads repeated
        import hfserve.skills.generation as generation

        generation.use_grouped_decode = lambda model: False
    skill.placement = Placement(device=args.device, dtype=args.dtype,
                                options=BackendOptions(**options))
    skill.cache_kwarg = _cache_kwarg()
    skill.max_context = 2048
    skill.start_batching(pad_id=0)
    return skill


class Clock:
    """Wall time on the host and, on CUDA, the device's time between two events."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def event(self):
        if not self.cuda:
            return None
        e = self.torch.cuda.Event(enable_timing=True)
        e.record()
        return e


def prompts(count: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(1, vocab) for _ in range(length)] for _ in range(count)]


def time_prefill(skill: GenerationSkill, clock: Clock, groups: list[int], length: int,
                 repeats: int) -> list[dict]:
    vocab = skill.model.config.vocab_size
    out = []
    for g in groups:
        runs = []
        for r in range(repeats + 1):            # the first is a warm-up
            batch = prompts(g, length, vocab, seed=r)
            clock.sync()
            t0 = time.perf_counter()
            states, logits, _ = skill.prefill(batch, [None] * g)
            sampling.sample(logits, [Pick(i, GREEDY, None, []) for i in range(g)])
            runs.append(time.perf_counter() - t0)
            for state in states:
                skill.release(state)
        ms = statistics.median(runs[1:]) * 1e3
        out.append({"prompts": g, "prompt_tokens": length, "ms": ms})
        print(f"   prefill {g:>3} x {length} tokens: {ms:7.2f} ms "
              f"({ms / g:.2f} ms a prompt)", flush=True)
    return out


def time_decode(skill: GenerationSkill, clock: Clock, rows: int, length: int,
                steps: int) -> dict:
    vocab = skill.model.config.vocab_size
    states, tokens = [], []
    for first in range(0, rows, 64):
        g = min(64, rows - first)
        st, logits, _ = skill.prefill(prompts(g, length, vocab, seed=first), [None] * g)
        states += st
        tokens += [c.token_id for c in sampling.sample(
            logits, [Pick(i, GREEDY, None, []) for i in range(g)])]
    picks = [Pick(i, GREEDY, None, []) for i in range(rows)]
    host, total, device = [], [], []
    for step in range(steps + 2):               # two warm-ups: merge, capture
        clock.sync()
        start = clock.event()
        t0 = time.perf_counter()
        pending = sampling.sample_later(skill.decode(states, tokens), picks)
        t1 = time.perf_counter()
        end = clock.event()
        tokens = [c.token_id for c in pending()]
        t2 = time.perf_counter()
        if step >= 2:
            host.append(t1 - t0)
            total.append(t2 - t0)
            if end is not None:
                end.synchronize()
                device.append(start.elapsed_time(end) / 1e3)
    loops = {"synced": time_loop(skill, states, tokens, picks, steps, fed=False)}
    if skill.feeds_tokens:
        loops["fed"] = time_loop(skill, states, tokens, picks, steps, fed=True)
    for state in states:
        skill.release(state)
    out = {"rows": rows, "host_ms": statistics.median(host) * 1e3,
           "step_ms": statistics.median(total) * 1e3,
           "device_ms": statistics.median(device) * 1e3 if device else None,
           "columns": getattr(skill.running, "columns", None),
           "graphs": bool(getattr(skill.running, "graphs", False))}
    out["tokens_per_s"] = rows / (out["step_ms"] / 1e3)
    dev = f"{out['device_ms']:6.2f}" if out["device_ms"] is not None else "     -"
    print(f"   decode {rows:>3} rows: host {out['host_ms']:6.2f} ms, step "
          f"{out['step_ms']:6.2f} ms, device {dev} ms, {out['tokens_per_s']:>9,.0f} tok/s "
          f"(columns {out['columns']}, graphs {out['graphs']})", flush=True)
    out["loop_ms"] = loops
    print("      back to back: " + ", ".join(
        f"{name} {ms:.2f} ms a step ({rows / ms * 1e3:,.0f} tok/s)"
        for name, ms in loops.items()), flush=True)
    return out


def time_loop(skill: GenerationSkill, states: list, tokens: list[int], picks: list,
              steps: int, fed: bool) -> float:
    """ms a step of ``steps`` decode steps back to back, as the scheduler's overlapped loop
    runs them: each step's choices reach the host while the next step computes, and the
    next step takes its tokens from the host (synced) or from the device (fed)."""
    clock_sync = Clock(skill.placement.device).sync
    indices = list(range(len(states)))
    pending = sampling.sample_later(skill.decode(states, tokens), picks)
    clock_sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        if fed:
            following = sampling.sample_later(
                skill.decode(states, tokens, (pending, indices)), picks)
            pending()
        else:
            following = sampling.sample_later(
                skill.decode(states, [c.token_id for c in pending()]), picks)
        pending = following
    pending()
    return (time.perf_counter() - t0) / steps * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", help="default bfloat16 on cuda, float32 on cpu")
    p.add_argument("--gguf", type=Path, default=CHAT_GGUF, help="where the config comes from")
    p.add_argument("--rows", default="1,16,64,128,256")
    p.add_argument("--groups", default="1,8,32,64")
    p.add_argument("--prompt-tokens", type=int, default=60)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--slots", action="store_true",
                   help="fixed cache slots on any device (default: on CUDA only)")
    p.add_argument("--prefill", choices=("auto", "fixed", "eager"), default="auto",
                   help="prefill at fixed shapes (captured on CUDA) or eagerly; auto: the "
                        "skill's default (fixed where decode is captured)")
    p.add_argument("--repeat-kv", action="store_true",
                   help="transformers' SDPA attention instead of the grouped decode attention")
    p.add_argument("--compile", action="store_true",
                   help="the model's forward through torch.compile before anything is "
                        "captured")
    p.add_argument("--compile-mode", default=None, help="torch.compile's mode")
    args = p.parse_args(argv)
    args.rows = [int(x) for x in args.rows.split(",") if x.strip()]
    args.groups = [int(x) for x in args.groups.split(",") if x.strip()]
    args.dtype = args.dtype or ("float32" if args.device == "cpu" else "bfloat16")
    import torch

    skill = build(args)
    fixed = skill.fixed_prefill
    prefill = "eager" if fixed is None else \
        "fixed shapes, captured" if fixed.graphs else "fixed shapes"
    print(f"== step times: {args.gguf.name} architecture, random {args.dtype} weights, "
          f"{args.device} {torch.cuda.get_device_name() if args.device.startswith('cuda') else ''}"
          f"{' (key/value heads repeated)' if args.repeat_kv else ''}, prefill {prefill}",
          flush=True)
    clock = Clock(args.device)
    with torch.inference_mode():
        time_prefill(skill, clock, args.groups, args.prompt_tokens, args.repeats)
        for rows in args.rows:
            time_decode(skill, clock, rows, args.prompt_tokens, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
