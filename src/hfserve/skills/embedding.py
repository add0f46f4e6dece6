"""Text embeddings: any encoder (or decoder) checkpoint, pooled and normalised exactly as its
sentence-transformers config says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from hfserve.backends.onnx_backend import load_onnx_encoder
from hfserve.backends.openvino_backend import openvino_runner
from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import tokenizer_kwargs
from hfserve.backends.torch_backend import load_torch_model
from hfserve.errors import InvalidRequest
from hfserve.skills.base import BatchSkill, Prepared, input_limit
from hfserve.text.codec import fit_length, token_ids
from hfserve.text.pooling import pool, read_pooling, shorten
from hfserve.types import ModelSpec, Task


def _torch_encoder(spec: ModelSpec, placement: Placement) -> Callable[..., Any]:
    from transformers import AutoModel

    model = load_torch_model(AutoModel, spec, placement)
    return lambda **features: model(**features).last_hidden_state


def _openvino_encoder(spec: ModelSpec, placement: Placement) -> Callable[..., Any]:
    return openvino_runner("feature-extraction", "last_hidden_state", spec, placement)


def _onnx_encoder(spec: ModelSpec, placement: Placement) -> Callable[..., Any]:
    return load_onnx_encoder(spec, placement, placement.options.device_kind)


# Backend -> loader returning ``encode(**features) -> last hidden state``.
ENCODERS: dict[str, Callable[[ModelSpec, Placement], Callable[..., Any]]] = {
    "torch": _torch_encoder,
    "openvino": _openvino_encoder,
    "onnxruntime": _onnx_encoder,
}


class EmbeddingSkill(BatchSkill):
    task: ClassVar[Task] = Task.EMBEDDING
    also_serves: ClassVar[tuple[Task, ...]] = (Task.FEATURE_EXTRACTION,)
    backends: ClassVar[tuple[str, ...]] = tuple(ENCODERS)

    def load(self, placement: Placement) -> None:
        from transformers import AutoTokenizer

        self.placement = placement
        self.pooling = read_pooling(self.spec.path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.spec.path),
                                                       gguf_file=self.spec.gguf_file,
                                                       **tokenizer_kwargs(self.spec))
        self.encode = ENCODERS[placement.backend](self.spec, placement)
        if placement.backend == "openvino":
            self.workers = placement.options.streams
        self.max_length = input_limit(self.pooling.max_seq_length, self.spec.max_context,
                                      getattr(self.tokenizer, "model_max_length", None))
        self.dimensions = int(self.spec.config.get("hidden_size") or 0)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "pooling": self.pooling.mode, "max_input_length":
                self.max_length, "dimensions": self.dimensions}

    def unload(self) -> None:
        self.encode = None

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        if isinstance(item, str):
            if not item:
                raise InvalidRequest("input must not be an empty string", param="input")
            ids = token_ids(self.tokenizer, item)
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            vocab = self.tokenizer.vocab_size + len(self.tokenizer.get_added_vocab())
            if any(t < 0 or t >= vocab for t in item):
                raise InvalidRequest("input token id out of the vocabulary", param="input")
            ids = list(item)
        else:
            raise InvalidRequest("each input must be a non-empty string or list of token ids",
                                 param="input")
        ids = fit_length(ids, self.max_length, bool(options.get("truncate")))
        # ``pooling: "none"``: every token's hidden state, unpooled (TEI's /embed_all).
        return Prepared(payload=(ids, options.get("dimensions"), options.get("pooling") == "none"),
                        cost=len(ids))

    def run_batch(self, items: list[Prepared]) -> list[Any]:
        import torch

        features = dict(self.tokenizer.pad({"input_ids": [p.payload[0] for p in items]},
                                           return_tensors="pt"))
        if "token_type_ids" in self.tokenizer.model_input_names:
            features.setdefault("token_type_ids", torch.zeros_like(features["input_ids"]))
        features = {k: v.to(self.placement.device) for k, v in features.items()}
        with torch.inference_mode():
            hidden = self.encode(**features)
            emb = pool(self.pooling.mode, hidden, features["attention_mask"]).float()
            if self.pooling.normalize:
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
        rows = emb.cpu().numpy()
        mask = features["attention_mask"].bool()
        return [hidden[i][mask[i]].float().cpu().numpy() if p.payload[2]
                else shorten(rows[i], p.payload[1], self.pooling.normalize)
                for i, p in enumerate(items)]
