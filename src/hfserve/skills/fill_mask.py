"""Fill-mask (masked language models: BERT, RoBERTa, DistilBERT...): the ``top_k`` likeliest
tokens for each mask, with their scores and the text they complete.

Tokenizing and ranking are transformers' fill-mask pipeline's own (``preprocess``,
``postprocess``), so answers are exactly what ``pipeline("fill-mask")`` gives; only the
forward pass is ours, batched across requests, on eager torch or on OpenVINO (optimum-intel's
model object, which the pipeline takes as it takes a torch model)."""

from __future__ import annotations

from typing import Any, ClassVar

from hfserve.backends.openvino_backend import load_openvino
from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.backends.torch_backend import load_torch_model
from hfserve.errors import ContextLengthExceeded, InvalidRequest
from hfserve.skills.base import BatchSkill, Prepared, input_limit
from hfserve.text.padded import padded_logits
from hfserve.types import Task

MAX_TOP_K = 100


class FillMaskSkill(BatchSkill):
    task: ClassVar[Task] = Task.FILL_MASK
    backends: ClassVar[tuple[str, ...]] = ("torch", "openvino")

    def load(self, placement: Placement) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer
        from transformers.pipelines import FillMaskPipeline

        self.placement = placement
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.spec.path),
                                                       **tokenizer_kwargs(self.spec))
        if self.tokenizer.mask_token is None:
            raise ValueError(f"the tokenizer of {self.spec.name!r} has no mask token")
        self.model = (load_openvino("fill-mask", self.spec, placement)
                      if placement.backend == "openvino"
                      else load_torch_model(AutoModelForMaskedLM, self.spec, placement))
        self.pipe = FillMaskPipeline(model=self.model, tokenizer=self.tokenizer,
                                     device=placement.device)
        self.max_length = input_limit(self.spec.max_context, self.tokenizer.model_max_length)

    def unload(self) -> None:
        self.model = self.pipe = None

    def info(self) -> dict[str, Any]:
        return {**super().info(), "mask_token": self.tokenizer.mask_token,
                "max_input_length": self.max_length}

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        mask = self.tokenizer.mask_token
        if not isinstance(item, str) or mask not in item:
            raise InvalidRequest(f"each input must be a text holding the mask token {mask}",
                                 param="inputs")
        top_k = options.get("top_k", 5)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 0 < top_k <= MAX_TOP_K:
            raise InvalidRequest(f"top_k must be an integer from 1 to {MAX_TOP_K}",
                                 param="parameters.top_k")
        encoded = self.pipe.preprocess(item)
        length = int(encoded["input_ids"].shape[1])
        if length > self.max_length:
            raise ContextLengthExceeded(f"input has {length} tokens, more than this model's "
                                        f"maximum of {self.max_length}", param="inputs")
        return Prepared(payload=(encoded, top_k), cost=length)

    def run_batch(self, items: list[Prepared]) -> list[Any]:
        encodings = [p.payload[0] for p in items]
        logits = padded_logits(self.model, encodings, self.tokenizer.pad_token_id or 0,
                               self.placement.device)
        out = []
        for row, (encoded, top_k) in zip(logits, (p.payload for p in items), strict=True):
            length = int(encoded["input_ids"].shape[1])
            answer = self.pipe.postprocess({"input_ids": encoded["input_ids"],
                                            "logits": row[None, :length]}, top_k=top_k)
            out.append(answer)
        return out
