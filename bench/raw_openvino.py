"""In-process baselines on OpenVINO, the backend hfserve places both models on here: MiniLM
through optimum-intel, SmolLM2 through openvino-genai's continuous-batching pipeline, both on
the IR that hfserve exported under its cache directory. Run only while no server is busy."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter
from bench.raw import RawClassifier, RawEmbedder, chat_ids, gguf_tokenizer
from bench.server import CACHE_DIR, EMBED_DIR
from bench.stats import pct


def precision_hint(dtype: str | None) -> str:
    from hfserve.backends.openvino_backend import PRECISION_HINTS

    return PRECISION_HINTS.get(dtype or "float32", "f32")


def find_export(model_type: str) -> Path | None:
    """The newest complete OpenVINO IR folder hfserve exported for ``model_type``."""
    found = []
    for folder in (CACHE_DIR / "openvino").glob("*/"):
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if (folder / ".complete").is_file() and config.get("model_type") == model_type:
            found.append(folder)
    return max(found, key=lambda f: f.stat().st_mtime, default=None)


class RawOVEmbedder(RawEmbedder):
    """RawEmbedder (same tokenization, mean pooling, normalisation) with the encoder run by
    optimum-intel's OVModelForFeatureExtraction."""

    engine = "OpenVINO"

    def __init__(self, threads: int, dtype: str | None) -> None:
        self.ov_config = {"INFERENCE_NUM_THREADS": threads,
                          "INFERENCE_PRECISION_HINT": precision_hint(dtype)}
        super().__init__(threads)

    def _load_model(self) -> Any:
        from optimum.intel import OVModelForFeatureExtraction

        ir = find_export("bert")
        self.source = str(ir or EMBED_DIR)
        return OVModelForFeatureExtraction.from_pretrained(
            self.source, export=ir is None, ov_config=self.ov_config)


def ov_export(folder: Path) -> Path:
    """``folder``'s classifier as OpenVINO IR beside it (``NAME-openvino``), exported once
    with optimum-intel's defaults, as hfserve exports it."""
    target = folder.with_name(f"{folder.name}-openvino")
    if not (target / ".complete").is_file():
        from optimum.intel import OVModelForSequenceClassification

        print(f"  exporting {folder.name} to OpenVINO IR in {target} (first run only)",
              flush=True)
        model = OVModelForSequenceClassification.from_pretrained(str(folder), export=True,
                                                                 compile=False)
        model.save_pretrained(target)
        (target / ".complete").write_text("ok\n")
    return target


class RawOVClassifier(RawClassifier):
    """RawClassifier (same tokenization and scores) with the network run by optimum-intel's
    OVModelForSequenceClassification."""

    engine = "OpenVINO"

    def __init__(self, folder: Path, threads: int, dtype: str | None) -> None:
        self.ov_config = {"INFERENCE_NUM_THREADS": threads,
                          "INFERENCE_PRECISION_HINT": precision_hint(dtype)}
        super().__init__(folder, threads)

    def _load_model(self) -> Any:
        from optimum.intel import OVModelForSequenceClassification

        self.source = str(ov_export(self.folder))
        return OVModelForSequenceClassification.from_pretrained(self.source,
                                                                ov_config=self.ov_config)


class RawOVGenerator:
    """openvino_genai.ContinuousBatchingPipeline fed token ids, greedy, ``ignore_eos``."""

    def __init__(self, threads: int, dtype: str | None, folder: Path | None = None,
                 options: dict[str, Any] | None = None) -> None:
        import openvino_genai as genai

        folder = folder or find_export("llama")
        if folder is None:
            raise RuntimeError(f"no SmolLM2 OpenVINO export under {CACHE_DIR}; run hfserve "
                               "with it on OpenVINO first")
        self.tokenizer = gguf_tokenizer()
        scheduler = genai.SchedulerConfig()
        scheduler.cache_size = 1
        scheduler.dynamic_split_fuse = True
        scheduler.max_num_seqs = 32
        # As hfserve configures it by default: prompt prefixes seen before are not prefilled
        # again, so the raw prefill time below is that of the same engine setup.
        scheduler.enable_prefix_caching = True
        # One inference thread crashes this OpenVINO version's pipeline in bf16/f16.
        self.threads = max(threads, 2) if precision_hint(dtype) != "f32" else threads
        self.options = {"INFERENCE_NUM_THREADS": self.threads,
                        "INFERENCE_PRECISION_HINT": precision_hint(dtype), **(options or {})}
        self.pipe = genai.ContinuousBatchingPipeline(str(folder), scheduler, "CPU",
                                                     self.options)
        self.folder = folder
        self.scheduler = {"cache_size_gb": 1, "dynamic_split_fuse": True, "max_num_seqs": 32,
                          "enable_prefix_caching": True,
                          "max_num_batched_tokens": scheduler.max_num_batched_tokens}
        self._keys = iter(range(1, 1 << 62))

    def _add(self, ids: list[int], max_tokens: int) -> Any:
        import numpy as np
        import openvino as ov
        import openvino_genai as genai

        config = genai.GenerationConfig()
        config.max_new_tokens = max_tokens
        config.ignore_eos = True
        config.do_sample = False
        return self.pipe.add_request(next(self._keys), ov.Tensor(np.asarray([ids], np.int64)),
                                     config)

    @staticmethod
    def _read(handle: Any) -> list[int]:
        """New tokens of ``handle``; must be called after every step or tokens are lost."""
        if not handle.can_read():
            return []
        return [t for out in handle.read().values() for t in out.generated_ids]

    def generate(self, prompt: str, max_tokens: int) -> list[int]:
        handle = self._add(chat_ids(self.tokenizer, prompt), max_tokens)
        tokens: list[int] = []
        while self.pipe.has_non_finished_requests():
            self.pipe.step()
            tokens += self._read(handle)
        return tokens + self._read(handle)

    def text(self, prompt: str, max_tokens: int) -> str:
        return self.tokenizer.decode(self.generate(prompt, max_tokens), skip_special_tokens=True)

    def prefill_ms(self, prompts: list[str]) -> float:
        """Median time from add_request to the first token of a lone request: the TTFT of a
        single request with no HTTP, tokenization or queueing (prompt ids prepared), over
        every prompt after the first (the warm-up). 40 prompts: with 10, the median moved by
        3 ms between runs."""
        ids = [chat_ids(self.tokenizer, p) for p in prompts]
        self.generate(prompts[0], 1)
        times = []
        for prompt_ids in ids[1:]:
            t0 = time.perf_counter()
            handle = self._add(prompt_ids, 1)
            while not self._read(handle):
                self.pipe.step()
            times.append(time.perf_counter() - t0)
            while self.pipe.has_non_finished_requests():
                self.pipe.step()
        return pct(times, 50) * 1e3

    def throughput(self, prompts: list[str], concurrency: int, max_tokens: int,
                   warmup: float, duration: float) -> dict:
        """Closed loop of ``concurrency`` requests, like the HTTP load generator: a finished
        request is replaced by a new one before the next step. Tokens count by the time they
        were read; TTFT covers every request, ITL the gaps inside the window."""
        ids = [chat_ids(self.tokenizer, p) for p in prompts]
        active: dict[Any, tuple[float, list[float]]] = {}
        ttft: list[float] = []
        itl: list[float] = []
        units, started, finished = 0, 0, 0
        t_start = time.perf_counter()
        w0, w1 = t_start + warmup, t_start + warmup + duration
        meter = None
        while True:
            now = time.perf_counter()
            if meter is None and now >= w0:
                meter = CpuMeter()
            if now >= w1:
                break
            while len(active) < concurrency:
                active[self._add(ids[started % len(ids)], max_tokens)] = (now, [])
                started += 1
            self.pipe.step()
            now = time.perf_counter()
            for handle in list(active):
                t_add, stamps = active[handle]
                new = len(self._read(handle))
                if new and not stamps:
                    ttft.append(now - t_add)
                if new and stamps and w0 <= now:
                    itl.append(now - stamps[-1])
                stamps.extend([now] * new)
                if w0 <= now <= w1:
                    units += new
                if handle.get_status().name != "RUNNING" and not handle.can_read():
                    del active[handle]
                    finished += 1
        cpu = meter.read() if meter else {}
        for handle in active:
            handle.cancel()
        while self.pipe.has_non_finished_requests():
            self.pipe.step()
        return {"engine": "OpenVINO GenAI CB", "concurrency": concurrency,
                "rate": units / duration, "unit": "tokens/s", "requests_finished": finished,
                "ttft_p50_ms": pct(ttft, 50) * 1e3, "ttft_p95_ms": pct(ttft, 95) * 1e3,
                "itl_p50_ms": pct(itl, 50) * 1e3, "itl_p95_ms": pct(itl, 95) * 1e3, **cpu}
