"""Token classification (NER, POS): entities with character offsets, grouped by the
aggregation strategies transformers' token-classification pipeline offers (none, simple,
first, average, max).

Tokenizing and grouping are the pipeline's own (``preprocess``, ``postprocess``), so
entities come out exactly as ``pipeline("token-classification")`` gives them; only the
forward pass is ours, batched across requests (right-padded, so each item's logits are its
own rows, sliced back to its length), on eager torch or on OpenVINO (optimum-intel's model
object, which the pipeline takes as it takes a torch model)."""

from __future__ import annotations

from typing import Any, ClassVar

from hfserve.backends.openvino_backend import load_openvino
from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.backends.torch_backend import load_torch_model
from hfserve.errors import InvalidRequest
from hfserve.skills.base import BatchSkill, Prepared
from hfserve.text.padded import padded_logits
from hfserve.types import Task

STRATEGIES = ("none", "simple", "first", "average", "max")


class TokenClassificationSkill(BatchSkill):
    task: ClassVar[Task] = Task.TOKEN_CLASSIFICATION
    backends: ClassVar[tuple[str, ...]] = ("torch", "openvino")

    def load(self, placement: Placement) -> None:
        from transformers import AutoModelForTokenClassification, AutoTokenizer
        from transformers.pipelines import TokenClassificationPipeline

        self.placement = placement
        tokenizer = AutoTokenizer.from_pretrained(str(self.spec.path),
                                                  **tokenizer_kwargs(self.spec))
        if placement.backend == "openvino":
            model = load_openvino("token-classification", self.spec, placement)
        else:
            model = load_torch_model(AutoModelForTokenClassification, self.spec, placement)
        self.model = model
        self.pipe = TokenClassificationPipeline(model=model, tokenizer=tokenizer,
                                                device=placement.device)

    def unload(self) -> None:
        self.model = self.pipe = None

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        if not isinstance(item, str) or not item:
            raise InvalidRequest("each input must be a non-empty text", param="inputs")
        strategy = str(options.get("aggregation_strategy") or "none").lower()
        if strategy not in STRATEGIES:
            raise InvalidRequest(f"aggregation_strategy must be one of {', '.join(STRATEGIES)}",
                                 param="parameters.aggregation_strategy")
        ignore = options.get("ignore_labels")
        chunks = list(self.pipe.preprocess(item, is_split_into_words=False))
        return Prepared(payload=(chunks, strategy, ignore),
                        cost=sum(int(c["input_ids"].shape[1]) for c in chunks))

    def run_batch(self, items: list[Prepared]) -> list[list[dict[str, Any]]]:
        from transformers.pipelines.token_classification import AggregationStrategy

        chunks = [c for p in items for c in p.payload[0]]
        logits = padded_logits(self.model, chunks, self.pipe.tokenizer.pad_token_id or 0,
                               self.placement.device)
        out, row = [], 0
        for prepared in items:
            chunk_list, strategy, ignore = prepared.payload
            outputs = []
            for chunk in chunk_list:
                length = int(chunk["input_ids"].shape[1])
                outputs.append({**chunk, "logits": logits[row:row + 1, :length],
                                "word_ids": None, "word_to_chars_map": None})
                row += 1
            entities = self.pipe.postprocess(outputs, AggregationStrategy(strategy), ignore)
            out.append([{k: (float(v) if k == "score" else int(v) if k in (
                "start", "end", "index") and v is not None else v)
                for k, v in e.items()} for e in entities])
        return out
