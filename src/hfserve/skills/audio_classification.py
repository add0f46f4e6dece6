"""Audio classification (Wav2Vec2, HuBERT, AST heads: keyword spotting, emotion, language
id...): one audio file in, every label's score out, as transformers' audio-classification
pipeline computes them (the feature extractor on the whole file, softmax over the logits).
Audio is decoded and turned into features in ``prepare``, off the event loop; items whose
features have the same shape run as one stacked forward (no padding, so each result is
what the model gives the file alone)."""

from __future__ import annotations

from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.backends.torch_backend import load_torch_model
from hfserve.media.audio import AudioLimits, audio_bytes, decode
from hfserve.skills.base import BatchSkill, Prepared
from hfserve.skills.classification import Scores
from hfserve.skills.speech_recognition import FRAME_SECONDS
from hfserve.types import Task


class AudioClassificationSkill(BatchSkill):
    task: ClassVar[Task] = Task.AUDIO_CLASSIFICATION
    backends: ClassVar[tuple[str, ...]] = ("torch",)

    def load(self, placement: Placement) -> None:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        self.placement = placement
        self.model = load_torch_model(AutoModelForAudioClassification, self.spec, placement)
        self.extractor = AutoFeatureExtractor.from_pretrained(str(self.spec.path),
                                                              **tokenizer_kwargs(self.spec))
        self.rate = int(self.extractor.sampling_rate)
        self.limits = AudioLimits.of(self.spec.options)
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "labels": self.labels, "sampling_rate": self.rate}

    def unload(self) -> None:
        self.model = None

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        samples = decode(audio_bytes(item, self.limits), self.rate, self.limits, "input")
        features = dict(self.extractor(samples, sampling_rate=self.rate, return_tensors="pt"))
        return Prepared(payload=features,
                        cost=max(1, int(samples.size / self.rate / FRAME_SECONDS)))

    def run_batch(self, items: list[Prepared]) -> list[Scores]:
        import torch

        results: list[Scores | None] = [None] * len(items)
        shapes: dict[tuple[Any, ...], list[int]] = {}
        for i, p in enumerate(items):
            shapes.setdefault(tuple((k, tuple(v.shape)) for k, v in sorted(p.payload.items())),
                              []).append(i)
        for members in shapes.values():
            names = items[members[0]].payload
            inputs = {name: torch.cat([items[i].payload[name] for i in members]).to(
                self.placement.device, self.model.dtype if value.is_floating_point()
                else value.dtype) for name, value in names.items()}
            with torch.inference_mode():
                logits = self.model(**inputs).logits.float().cpu()
            for i, row in zip(members, logits, strict=True):
                results[i] = Scores(self.labels, torch.softmax(row, dim=-1).tolist(),
                                    row.tolist())
        return results  # type: ignore[return-value]
