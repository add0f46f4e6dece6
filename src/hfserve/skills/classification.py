"""Sequence classification (sentiment, topic, NLI heads...): one text, or a pair of texts, in;
every label's score out, as transformers' text-classification pipeline computes them
(softmax, or sigmoid for multi-label and single-logit heads, as the config's
``problem_type`` says)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from hfserve.backends.openvino_backend import openvino_runner
from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.backends.torch_backend import load_torch_model
from hfserve.errors import ContextLengthExceeded, InvalidRequest
from hfserve.skills.base import BatchSkill, Prepared, input_limit
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


MAX_LABELS = 64      # candidate labels of one zero-shot text (each is a pair to run)


def candidate_labels(options: dict[str, Any]) -> list[str]:
    """The ``candidate_labels`` option of a zero-shot request: 1 to ``MAX_LABELS`` texts (a
    list, or one comma-separated text as the pipelines take it)."""
    labels = options["candidate_labels"]
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    if not (isinstance(labels, list) and 0 < len(labels) <= MAX_LABELS and all(
            isinstance(label, str) and label for label in labels)):
        raise InvalidRequest(f"candidate_labels must be 1 to {MAX_LABELS} non-empty texts",
                             param="parameters.candidate_labels")
    return list(labels)


def hypothesis_template(options: dict[str, Any], default: str) -> str:
    """The ``hypothesis_template`` option: a text holding ``{}`` where the label goes."""
    template = options.get("hypothesis_template") or default
    if not isinstance(template, str) or "{}" not in template:
        raise InvalidRequest("hypothesis_template must hold {} where the label goes",
                             param="parameters.hypothesis_template")
    return template


@dataclass
class ZeroShot:
    """One text to classify zero-shot: its (text, hypothesis) pairs, one per label."""

    text: str
    labels: list[str]
    pairs: list[dict[str, Any]]
    entail: int
    contradict: int
    multi_label: bool

    def result(self, logits: Any) -> dict[str, Any]:
        """transformers' zero-shot pipeline's answer from the pairs' NLI logits: a softmax of
        the entailment logits over the labels, or per label (multi-label) a softmax of
        entailment against contradiction."""
        import torch

        if self.multi_label:
            pair = logits[:, [self.contradict, self.entail]]
            scores = torch.softmax(pair, dim=-1)[:, 1]
        else:
            scores = torch.softmax(logits[:, self.entail], dim=0)
        order = sorted(range(len(self.labels)), key=lambda i: -float(scores[i]))
        return {"sequence": self.text, "labels": [self.labels[i] for i in order],
                "scores": [float(scores[i]) for i in order]}


def _torch_classifier(spec: ModelSpec, placement: Placement) -> Callable[..., Any]:
    from transformers import AutoModelForSequenceClassification

    model = load_torch_model(AutoModelForSequenceClassification, spec, placement)
    return lambda **features: model(**features).logits


def _openvino_classifier(spec: ModelSpec, placement: Placement) -> Callable[..., Any]:
    return openvino_runner("text-classification", "logits", spec, placement)


# Backend -> loader returning ``classify(**features) -> logits``.
CLASSIFIERS: dict[str, Callable[[ModelSpec, Placement], Callable[..., Any]]] = {
    "torch": _torch_classifier,
    "openvino": _openvino_classifier,
}


class ClassificationSkill(BatchSkill):
    """Also the reranker: a cross-encoder is a classifier of (query, document) pairs with one
    logit, whose sigmoid is the relevance score (sentence-transformers' CrossEncoder)."""

    task: ClassVar[Task] = Task.TEXT_CLASSIFICATION
    also_serves: ClassVar[tuple[Task, ...]] = (Task.RERANK, Task.ZERO_SHOT)
    backends: ClassVar[tuple[str, ...]] = tuple(CLASSIFIERS)

    def load(self, placement: Placement) -> None:
        from transformers import AutoTokenizer

        self.placement = placement
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.spec.path),
                                                       **tokenizer_kwargs(self.spec))
        self.classify = CLASSIFIERS[placement.backend](self.spec, placement)
        if placement.backend == "openvino":
            self.workers = placement.options.streams
        config = self.spec.config
        count = int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
        names = {int(k): v for k, v in (config.get("id2label") or {}).items()}
        self.labels = [names.get(i, f"LABEL_{i}") for i in range(count)]
        # transformers' pipeline: sigmoid for multi-label heads and a single logit.
        self.sigmoid = config.get("problem_type") == "multi_label_classification" or count == 1
        self.max_length = input_limit(self.spec.max_context,
                                      getattr(self.tokenizer, "model_max_length", None))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "labels": self.labels, "max_input_length": self.max_length}

    def unload(self) -> None:
        self.classify = None

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        """``item``: a text, or a pair (two texts) for pair classifiers (NLI, cross-encoders);
        with ``candidate_labels`` in ``options``, a text classified zero-shot."""
        if options.get("candidate_labels") is not None:
            return self._prepare_zero_shot(item, options)
        pair = isinstance(item, list | tuple) and len(item) == 2 and all(
            isinstance(t, str) and t for t in item)
        if not (pair or (isinstance(item, str) and item)):
            raise InvalidRequest("each input must be a non-empty text or a pair of texts",
                                 param="input")
        text, second = (item[0], item[1]) if pair else (item, None)
        encoded = self._encode(text, second, bool(options.get("truncate")))
        return Prepared(payload=encoded, cost=len(encoded["input_ids"]))

    def _encode(self, text: str, second: str | None, truncate: bool) -> dict[str, Any]:
        encoded = dict(self.tokenizer(text, second, truncation=truncate,
                                      max_length=self.max_length))
        if len(encoded["input_ids"]) > self.max_length:
            raise ContextLengthExceeded(
                f"input has {len(encoded['input_ids'])} tokens, more than this model's maximum "
                f"of {self.max_length}; shorten it or pass truncate=true", param="input")
        return encoded

    def _prepare_zero_shot(self, item: Any, options: dict[str, Any]) -> Prepared:
        """The text paired with the hypothesis of each candidate label, as transformers'
        zero-shot pipeline pairs them."""
        labels = candidate_labels(options)
        if not isinstance(item, str) or not item:
            raise InvalidRequest("each input must be a non-empty text", param="inputs")
        template = hypothesis_template(options, "This example is {}.")
        entail = self._nli_label("entail")
        pairs = [self._encode(item, template.format(label), bool(options.get("truncate")))
                 for label in labels]
        return Prepared(payload=ZeroShot(item, list(labels), pairs, entail,
                                         self._nli_label("contra"),
                                         bool(options.get("multi_label"))),
                        cost=sum(len(p["input_ids"]) for p in pairs))

    def _nli_label(self, prefix: str) -> int:
        found = next((i for i, name in enumerate(self.labels)
                      if name.lower().startswith(prefix)), None)
        if found is None:
            raise InvalidRequest(f"model {self.spec.name!r} has no {prefix}... label: it is "
                                 "not an NLI model, which zero-shot classification needs",
                                 param="model")
        return found

    def run_batch(self, items: list[Prepared]) -> list[Any]:
        import torch

        rows = [row for p in items for row in (
            p.payload.pairs if isinstance(p.payload, ZeroShot) else [p.payload])]
        features = dict(self.tokenizer.pad(rows, return_tensors="pt"))
        features = {k: v.to(self.placement.device) for k, v in features.items()}
        with torch.inference_mode():
            logits = self.classify(**features).float().cpu()
        out, first = [], 0
        for p in items:
            if isinstance(p.payload, ZeroShot):
                count = len(p.payload.pairs)
                out.append(p.payload.result(logits[first:first + count]))
                first += count
                continue
            row = logits[first]
            first += 1
            scores = torch.sigmoid(row) if self.sigmoid else torch.softmax(row, dim=-1)
            out.append(Scores(self.labels, scores.tolist(), row.tolist()))
        return out
