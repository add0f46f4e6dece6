"""In-process baselines: the same models run directly with transformers in this process, with
the same thread setting the server uses. Run these only while no server is busy."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter
from bench.server import CHAT_GGUF, EMBED_DIR
from bench.stats import pct


def _timed_loop(step, warmup, duration: float, min_runs: int = 1
                ) -> tuple[int, float, list[float], dict]:
    """Call ``warmup()`` untimed, then ``step()`` (returns units done) until ``duration``
    seconds have passed (at least ``min_runs`` times). Returns units, seconds, per-run times
    and CPU use."""
    warmup()
    units, times = 0, []
    meter = CpuMeter()
    start = time.perf_counter()
    while time.perf_counter() - start < duration or len(times) < min_runs:
        t0 = time.perf_counter()
        units += step()
        times.append(time.perf_counter() - t0)
    return units, time.perf_counter() - start, times, meter.read()


class RawEmbedder:
    """AutoModel + mean pooling + L2 normalisation, as sentence-transformers configures
    all-MiniLM-L6-v2 (mean pooling, Normalize, max_seq_length 256)."""

    engine = "torch"

    def __init__(self, threads: int) -> None:
        import torch
        from transformers import AutoTokenizer

        torch.set_num_threads(threads)
        self.torch = torch
        self.threads = threads
        self.tokenizer = AutoTokenizer.from_pretrained(str(EMBED_DIR))
        self.model = self._load_model()
        cfg = json.loads((EMBED_DIR / "sentence_bert_config.json").read_text())
        self.max_length = int(cfg.get("max_seq_length", 256))

    def _load_model(self) -> Any:
        from transformers import AutoModel

        return AutoModel.from_pretrained(str(EMBED_DIR), dtype=self.torch.float32).eval()

    def embed(self, texts: list[str]):
        torch = self.torch
        features = self.tokenizer(texts, padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**features).last_hidden_state
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            emb = torch.nn.functional.normalize(emb, p=2, dim=1)
        return emb.numpy()

    def throughput(self, texts: list[str], batch_size: int, duration: float) -> dict:
        return {"engine": self.engine, **batch_throughput(self.embed, texts, batch_size,
                                                          duration, "sentences/s")}


def batch_throughput(run, items: list, batch_size: int, duration: float, unit: str) -> dict:
    """``run(batch)`` over consecutive batches of ``items`` (cycling) for ``duration``
    seconds: items per second, the median batch time and CPU use."""
    state = {"pos": 0}

    def step() -> int:
        pos = state["pos"]
        batch = (items + items)[pos:pos + batch_size]
        state["pos"] = (pos + batch_size) % len(items)
        run(batch)
        return len(batch)

    units, seconds, times, cpu = _timed_loop(
        step, lambda: [step() for _ in range(3)], duration, min_runs=3)
    return {"batch_size": batch_size, "rate": units / seconds, "unit": unit,
            "batch_p50_ms": pct(times, 50) * 1e3, "seconds": seconds, **cpu}


class RawClassifier:
    """AutoModelForSequenceClassification on texts or (query, document) pairs: tokenize the
    batch, forward, then the sigmoid of a single logit (a cross-encoder's relevance, as
    sentence-transformers' CrossEncoder gives it) or a softmax over the labels (transformers'
    text-classification pipeline)."""

    engine = "torch"

    def __init__(self, folder: Path, threads: int) -> None:
        import torch
        from transformers import AutoTokenizer

        torch.set_num_threads(threads)
        self.torch = torch
        self.threads = threads
        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = self._load_model()

    def _load_model(self) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(
            str(self.folder), dtype=self.torch.float32).eval()

    def scores(self, batch: list[str] | list[tuple[str, str]]):
        torch = self.torch
        pairs = isinstance(batch[0], tuple | list)
        first, second = (list(t) for t in zip(*batch, strict=True)) if pairs else (batch, None)
        features = self.tokenizer(first, second, padding=True, truncation=True,
                                  return_tensors="pt")
        with torch.inference_mode():
            logits = self.model(**features).logits.float()
            scores = torch.sigmoid(logits) if logits.shape[-1] == 1 else \
                torch.softmax(logits, dim=-1)
        return scores.numpy()

    def throughput(self, items: list, batch_size: int, duration: float, unit: str) -> dict:
        return {"engine": self.engine, **batch_throughput(self.scores, items, batch_size,
                                                          duration, unit)}


def gguf_tokenizer() -> Any:
    """SmolLM2's tokenizer as read from the GGUF file (what hfserve uses)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(CHAT_GGUF.parent), gguf_file=CHAT_GGUF.name)


def chat_text(tokenizer: Any, prompt: str) -> str:
    """One user message rendered with the model's chat template, generation prompt added."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         tokenize=False, add_generation_prompt=True)


def chat_ids(tokenizer: Any, prompt: str) -> list[int]:
    return tokenizer(chat_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]


class RawGenerator:
    """AutoModelForCausalLM from the GGUF file (dequantized, float32), greedy ``generate``
    that, like ``ignore_eos``, always produces exactly ``max_new_tokens`` tokens."""

    def __init__(self, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        folder, name = str(CHAT_GGUF.parent), CHAT_GGUF.name
        self.tokenizer = gguf_tokenizer()
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32).eval()
        if self.tokenizer.pad_token is None:  # the GGUF tokenizer may name none
            cfg = self.model.config
            pad = cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id
            self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(pad)

    def _config(self, max_new_tokens: int) -> Any:
        gc = copy.deepcopy(self.model.generation_config)
        gc.max_new_tokens = max_new_tokens
        gc.do_sample = False
        gc.eos_token_id = []          # never stop early: the EOS token is generated on
        if gc.pad_token_id is None:
            gc.pad_token_id = self.tokenizer.eos_token_id
        return gc

    def _encode(self, prompts: list[str]):
        return self.tokenizer([chat_text(self.tokenizer, p) for p in prompts],
                              return_tensors="pt", padding=True, add_special_tokens=False)

    def generate(self, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
        enc = self._encode(prompts)
        with self.torch.inference_mode():
            out = self.model.generate(**enc, generation_config=self._config(max_new_tokens))
        return out[:, enc["input_ids"].shape[1]:].tolist()

    def text(self, prompt: str, max_new_tokens: int) -> str:
        ids = self.generate([prompt], max_new_tokens)[0]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def throughput(self, prompts: list[str], batch_size: int, max_new_tokens: int,
                   duration: float) -> dict:
        state = {"run": 0}

        def step() -> int:
            start = (state["run"] * batch_size) % len(prompts)
            batch = (prompts + prompts)[start:start + batch_size]
            state["run"] += 1
            rows = self.generate(batch, max_new_tokens)
            if any(len(r) != max_new_tokens for r in rows):
                raise RuntimeError("raw generate returned fewer tokens than asked")
            return sum(len(r) for r in rows)

        def warmup() -> None:
            self.generate(prompts[:batch_size], 8)

        units, seconds, times, cpu = _timed_loop(step, warmup, duration)
        return {"engine": "torch generate", "batch_size": batch_size,
                "rate": units / seconds, "unit": "tokens/s",
                "run_p50_ms": pct(times, 50) * 1e3, "runs": len(times), "seconds": seconds,
                "ms_per_step": pct(times, 50) * 1e3 / max_new_tokens, **cpu}
