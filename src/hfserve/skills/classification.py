"""Sequence classification (sentiment, topic, NLI heads...): one text, or a pair of texts, in;
every label's score out, as transformers' text-classification pipeline computes them
(softmax, or sigmoid for multi-label and single-logit heads, as the config's
``problem_type`` says)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from hfserve.errors import ContextLengthExceeded, InvalidRequest
from hfserve.skills.base import BatchSkill, Placement, Prepared
from hfserve.skills.openvino_backend import ThreadRequests, load_openvino
from hfserve.skills.torch_backend import load_torch_model
from hfserve.types import ModelSpec, Task


@dataclass
class Scores:
    """One item's result: the labels in the model's order, their scores and raw logits."""

    labels: list[str]
    scores: list[float]
    logits: list[float]

    @property
    def best(self) -> int:
        return max(range(len(self.scores)), key=self.scores.__getitem__)


def _torch_classifier(spec: ModelSpec, placement: Placement) -> Callable[..., Any]:
    from transformers import AutoModelForSequenceClassification

    model = load_torch_model(AutoModelForSequenceClassification, spec, placement)
    return lambda **features: model(**features).logits


def _openvino_classifier(spec: ModelSpec, placement: Placement) -> Callable[..., Any]:
    streams = placement.options.get("streams", 1)
    model = load_openvino("text-classification", spec, placement, streams)
    if streams == 1:
        return lambda **features: model(**features).logits
    import torch

    run = ThreadRequests(model)
    return lambda **features: torch.from_numpy(
        run({k: v.numpy() for k, v in features.items()})["logits"])


# Backend -> loader returning ``classify(**features) -> logits``.
CLASSIFIERS: dict[str, Callable[[ModelSpec, Placement], Callable[..., Any]]] = {
    "torch": _torch_classifier,
    "openvino": _openvino_classifier,
}


class ClassificationSkill(BatchSkill):
    """Also the reranker: a cross-encoder is a classifier of (query, document) pairs with one
    logit, whose sigmoid is the relevance score (sentence-transformers' CrossEncoder)."""

    task: ClassVar[Task] = Task.TEXT_CLASSIFICATION
    also_serves: ClassVar[tuple[Task, ...]] = (Task.RERANK,)
    backends: ClassVar[tuple[str, ...]] = tuple(CLASSIFIERS)

    def load(self, placement: Placement) -> None:
        from transformers import AutoTokenizer

        self.placement = placement
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.spec.path))
        self.classify = CLASSIFIERS[placement.backend](self.spec, placement)
        if placement.backend == "openvino":
            self.workers = placement.options.get("streams", 1)
        config = self.spec.config
        count = int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
        names = {int(k): v for k, v in (config.get("id2label") or {}).items()}
        self.labels = [names.get(i, f"LABEL_{i}") for i in range(count)]
        # transformers' pipeline: sigmoid for multi-label heads and a single logit.
        self.sigmoid = config.get("problem_type") == "multi_label_classification" or count == 1
        limits = [v for v in (self.spec.max_context,
                              getattr(self.tokenizer, "model_max_length", None))
                  if isinstance(v, int) and 0 < v < 1_000_000]
        self.max_length = min(limits) if limits else 512

    def unload(self) -> None:
        self.classify = None

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        """``item``: a text, or a pair (two texts) for pair classifiers (NLI, cross-encoders)."""
        pair = isinstance(item, list | tuple) and len(item) == 2 and all(
            isinstance(t, str) and t for t in item)
        if not (pair or (isinstance(item, str) and item)):
            raise InvalidRequest("each input must be a non-empty text or a pair of texts",
                                 param="input")
        text, second = (item[0], item[1]) if pair else (item, None)
        encoded = self.tokenizer(text, second, truncation=bool(options.get("truncate")),
                                 max_length=self.max_length)
        ids = encoded["input_ids"]
        if len(ids) > self.max_length:
            raise ContextLengthExceeded(
                f"input has {len(ids)} tokens, more than this model's maximum of "
                f"{self.max_length}; shorten it or pass truncate=true", param="input")
        return Prepared(payload=dict(encoded), cost=len(ids))

    def run_batch(self, items: list[Prepared]) -> list[Scores]:
        import torch

        features = dict(self.tokenizer.pad([p.payload for p in items], return_tensors="pt"))
        features = {k: v.to(self.placement.device) for k, v in features.items()}
        with torch.inference_mode():
            logits = self.classify(**features).float()
            scores = torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, dim=-1)
        return [Scores(self.labels, s, lg) for s, lg in
                zip(scores.cpu().tolist(), logits.cpu().tolist(), strict=True)]
