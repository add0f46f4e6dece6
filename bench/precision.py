"""What bfloat16 costs against float32, served: MiniLM's embedding cosine over 50 sentences,
and SmolLM2's greedy agreement over 10 chat prompts x 32 tokens (each request alone, so only
the dtype differs). One hfserve serves each model twice, ``dtype: float32`` and
``dtype: bfloat16``, on ``--backend`` (auto: OpenVINO where installed).

    .venv/bin/python bench/precision.py [--backend auto|torch]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.sentences import chat_prompts, sentences  # noqa: E402
from bench.server import CHAT_GGUF, EMBED_DIR, ServerOptions, ServerProcess  # noqa: E402

DTYPES = ("float32", "bfloat16")


def embeddings(http: httpx.Client, model: str, texts: list[str]) -> np.ndarray:
    got = http.post("/v1/embeddings", json={"model": model, "input": texts}).json()
    return np.array([d["embedding"] for d in got["data"]])


def greedy_tokens(http: httpx.Client, model: str, prompt: str) -> list[str]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "temperature": 0, "max_tokens": 32, "ignore_eos": True, "logprobs": True}
    got = http.post("/v1/chat/completions", json=body).json()
    return [t["token"] for t in got["choices"][0]["logprobs"]["content"]]


def agreed(a: list[str], b: list[str]) -> int:
    """Tokens equal before the first that differs."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    models = [{"name": f"{kind}-{dtype}", "source": str(source), "dtype": dtype,
               "backend": args.backend}
              for kind, source in (("minilm", EMBED_DIR), ("smol", CHAT_GGUF))
              for dtype in DTYPES]
    log = ROOT / "bench" / "results" / "precision-server.log"
    with ServerProcess(ServerOptions(models=models), log) as server, \
            httpx.Client(base_url=server.base_url, timeout=300) as http:
        for model in models:
            info = http.get(f"/v1/models/{model['name']}").json()
            print(f"{model['name']}: {info['device']} {info['backend']} {info['dtype']}")
        texts = sentences(50)
        f32, bf16 = (embeddings(http, f"minilm-{dtype}", texts) for dtype in DTYPES)
        cosine = (f32 * bf16).sum(1) / np.linalg.norm(f32, axis=1) / np.linalg.norm(bf16, axis=1)
        print(f"MiniLM bf16 vs f32, {len(texts)} sentences: cosine mean {cosine.mean():.6f}, "
              f"min {cosine.min():.6f}")
        prompts = chat_prompts(10)
        pairs = [[greedy_tokens(http, f"smol-{dtype}", p) for dtype in DTYPES] for p in prompts]
        same = [agreed(a, b) for a, b in pairs]
        print(f"SmolLM2 bf16 vs f32, {len(prompts)} prompts x 32 tokens: "
              f"{sum(s == 32 for s in same)}/{len(prompts)} identical, "
              f"{sum(same)}/{32 * len(prompts)} tokens before the first difference "
              f"(per prompt: {same})")


if __name__ == "__main__":
    main()
