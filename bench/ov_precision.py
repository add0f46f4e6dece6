"""SmolLM2 on openvino-genai's continuous-batching pipeline at precisions other than hfserve's
default on OpenVINO (float32 weights and inference): the speed of one request, its prefill,
and the two things that decide a default: whether greedy output is the same for a prompt
alone and inside a batch of 16 (hfserve's rule for every backend), and how often it is the
same as float32's.

The int8 IR is hfserve's own export for ``int8: true`` (optimum-intel's 8-bit weight
compression), written to a cache of its own (``--cache``), so that the raw baselines of
``make bench``, which take the newest SmolLM2 export in hfserve's cache, are not affected.
Run while the machine is otherwise idle:

    .venv/bin/python bench/ov_precision.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.raw import chat_ids  # noqa: E402
from bench.raw_openvino import RawOVGenerator  # noqa: E402
from bench.server import CACHE_DIR, CHAT_GGUF  # noqa: E402
from bench.stats import pct  # noqa: E402

PROMPTS = [f"Tell me a short fact about the number {i}." for i in range(12)] + [
    "What is the capital of France?", "Write a haiku about rain.", "Explain gravity simply.",
    "List three fruits."]
SPEED_PROMPT = "What is the capital of France? Answer in one sentence."
# (name, int8 weights, dtype of inference, extra compile options)
VARIANTS = [
    ("f32 (default)", False, "float32", {}),
    ("f32 weights, bf16 inference", False, "bfloat16", {}),
    ("int8 weights", True, "float32", {}),
    ("int8 weights, no dynamic quantization", True, "float32",
     {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}),
]


def export(int8: bool, cache: Path) -> Path:
    from hfserve.backends.openvino_backend import ensure_export
    from hfserve.backends.placement import BackendOptions, Placement
    from hfserve.model_config import ModelConfig
    from hfserve.registry.spec import build_spec

    spec = build_spec(ModelConfig(source=str(CHAT_GGUF)))
    return ensure_export("text-generation", spec,
                         Placement(options=BackendOptions(cache_dir=cache, int8=int8)))


def together(gen: RawOVGenerator, prompts: list[str], tokens: int) -> list[list[int]]:
    handles = [gen._add(chat_ids(gen.tokenizer, p), tokens) for p in prompts]
    out: list[list[int]] = [[] for _ in handles]
    while gen.pipe.has_non_finished_requests():
        gen.pipe.step()
        for got, handle in zip(out, handles, strict=True):
            got += gen._read(handle)
    for got, handle in zip(out, handles, strict=True):
        got += gen._read(handle)
    return out


def measure(gen: RawOVGenerator, tokens: int, repeats: int) -> dict:
    gen.generate(SPEED_PROMPT, tokens)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        made = len(gen.generate(SPEED_PROMPT, tokens))
        rates.append(made / (time.perf_counter() - start))
    alone = [gen.generate(p, 32) for p in PROMPTS]
    return {"rate": pct(rates, 50), "prefill_ms": gen.prefill_ms(
        [f"{SPEED_PROMPT} ({i})" for i in range(21)]),
            "alone": alone, "batched": together(gen, PROMPTS, 32)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=CACHE_DIR.parent / "hfserve-precision",
                   help="where the IRs are exported (not hfserve's cache)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=64, help="tokens of the timed generations")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    folders = {int8: export(int8, args.cache) for int8 in (False, True)}
    results = []
    for name, int8, dtype, options in VARIANTS:
        gen = RawOVGenerator(args.threads, dtype, folder=folders[int8], options=options)
        results.append((name, measure(gen, args.tokens, args.repeats)))
        del gen
        print(f"measured {name}", flush=True)
    reference = results[0][1]["alone"]
    n = len(PROMPTS)
    print(f"\nSmolLM2-135M-Instruct (Q4_1 GGUF) on openvino-genai CB, {args.threads} threads; "
          f"{n} prompts, 32 greedy tokens each\n")
    print("| Variant | tokens/s, 1 request | prefill ms | same alone and in a batch of "
          f"{n} | same as f32 |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results:
        invariant = sum(a == b for a, b in zip(r["alone"], r["batched"], strict=True))
        same = sum(a == b for a, b in zip(r["alone"], reference, strict=True))
        print(f"| {name} | {r['rate']:.1f} | {r['prefill_ms']:.1f} | {invariant} / {n} | "
              f"{same} / {n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
