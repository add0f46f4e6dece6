"""In-process baselines of the media benchmark: the same folders run directly with
transformers in this process (eager torch, at the threads and precision the server
reported), from the same decoded inputs the server decodes (hfserve's own image and audio
decoders), preprocessing included as the server's work includes it. Run these only while no
server is busy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.raw import _timed_loop
from bench.stats import pct


def _torch(threads: int, dtype: str | None) -> tuple[Any, Any]:
    import torch

    torch.set_num_threads(threads)
    return torch, getattr(torch, dtype or "float32")


class RawClip:
    """``CLIPModel.get_image_features`` on a batch of images, the projected features
    L2-normalised (as hfserve's and Infinity's CLIP embeddings are); pixels from the
    folder's image processor, its PIL class as hfserve loads it (no torchvision here)."""

    def __init__(self, folder: Path, threads: int, dtype: str | None) -> None:
        from transformers import CLIPModel

        from hfserve.skills.image_processing import image_processor

        class Spec:
            path = folder

        self.torch, self.dtype = _torch(threads, dtype)
        self.threads = threads
        self.processor = image_processor(Spec)
        self.model = CLIPModel.from_pretrained(str(folder), dtype=self.dtype).eval()

    def embed(self, images: list[Any]) -> np.ndarray:
        torch = self.torch
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=pixels.to(self.dtype))
            emb = torch.nn.functional.normalize(out.pooler_output, p=2, dim=-1)
        return emb.float().numpy()

    def throughput(self, images: list[Any], batch_size: int, duration: float) -> dict:
        state = {"pos": 0}

        def step() -> int:
            pos = state["pos"]
            batch = (images + images)[pos:pos + batch_size]
            state["pos"] = (pos + batch_size) % len(images)
            self.embed(batch)
            return len(batch)

        units, seconds, times, cpu = _timed_loop(
            step, lambda: [step() for _ in range(2)], duration, min_runs=3)
        return {"engine": "torch get_image_features", "batch_size": batch_size,
                "rate": units / seconds, "unit": "images/s",
                "batch_p50_ms": pct(times, 50) * 1e3, "seconds": seconds, **cpu}


class RawWhisper:
    """``WhisperForConditionalGeneration.generate`` on a batch of clips: the feature
    extractor's log-mel features, the language given as the benchmark's requests give it,
    and the tokens decoded to text. It decodes as hfserve does, with the generation config
    of transformers' speech-recognition pipeline on this model: the pipeline's defaults (5
    beams, 256 new tokens) over the folder's values, except that a ``max_length`` of the
    folder's (which the benchmark's sets) replaces the 256."""

    def __init__(self, folder: Path, threads: int, dtype: str | None, language: str,
                 new_tokens: int) -> None:
        """``new_tokens``: what each transcript must decode (checked on every run)."""
        from transformers import WhisperForConditionalGeneration, WhisperProcessor, pipeline

        self.torch, self.dtype = _torch(threads, dtype)
        self.threads = threads
        self.language = language
        processor = WhisperProcessor.from_pretrained(str(folder))
        self.extractor, self.tokenizer = processor.feature_extractor, processor.tokenizer
        self.rate = int(self.extractor.sampling_rate)
        self.model = WhisperForConditionalGeneration.from_pretrained(
            str(folder), dtype=self.dtype).eval()
        self.generation_config = pipeline(
            "automatic-speech-recognition", model=self.model, tokenizer=self.tokenizer,
            feature_extractor=self.extractor).generation_config
        self.num_beams = int(self.generation_config.num_beams or 1)
        self.max_new_tokens = new_tokens
        # whether generate() returns the decoder prompt (start, language, task,
        # no-timestamps) before the new tokens (transformers 5.5 does not): from a run that
        # adds one token
        silence = np.zeros(self.rate, dtype=np.float32)
        self.prompt_length = self._generate([silence], max_new_tokens=1).shape[1] - 1

    def _generate(self, clips: list[np.ndarray], **extra: Any) -> Any:
        features = self.extractor(clips, sampling_rate=self.rate, return_tensors="pt")
        with self.torch.inference_mode():
            return self.model.generate(features["input_features"].to(self.dtype),
                                       generation_config=self.generation_config,
                                       language=self.language, **extra)

    def transcribe(self, clips: list[np.ndarray]) -> tuple[list[str], list[int]]:
        """Each clip's text and its number of new tokens."""
        out = self._generate(clips)
        new = out[:, self.prompt_length:]
        return (self.tokenizer.batch_decode(new, skip_special_tokens=True),
                [int(row.numel()) for row in new])

    def throughput(self, clips: list[np.ndarray], batch_size: int, duration: float) -> dict:
        state = {"pos": 0, "tokens": 0}
        seconds_of = [c.size / self.rate for c in clips]

        def step() -> float:
            pos = state["pos"]
            members = [(pos + k) % len(clips) for k in range(batch_size)]
            state["pos"] = (pos + batch_size) % len(clips)
            _, counts = self.transcribe([clips[i] for i in members])
            if any(n != self.max_new_tokens for n in counts):
                raise RuntimeError(f"raw generate made {counts} new tokens, not "
                                   f"{self.max_new_tokens} each")
            state["tokens"] += sum(counts)
            return sum(seconds_of[i] for i in members)

        def warmup() -> None:
            self.transcribe(clips[:batch_size])

        audio, seconds, times, cpu = _timed_loop(step, warmup, duration, min_runs=2)
        return {"engine": f"torch generate, {self.num_beams} beam"
                + ("s" if self.num_beams > 1 else ""), "batch_size": batch_size,
                "rate": audio / seconds, "unit": "audio s/s",
                "tokens_per_s": state["tokens"] / seconds, "batch_p50_ms": pct(times, 50) * 1e3,
                "runs": len(times), "seconds": seconds, **cpu}
