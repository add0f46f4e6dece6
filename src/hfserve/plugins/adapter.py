"""A skill file in the seed ecosystem's format, served as a hfserve skill.

Such a file holds a class ``hf_<name>(resources, metadata)`` whose ``init_<hardware>(model,
device, label)`` returns ``(endpoint, tokenizer, handler, queue, batch_size)``; the handler
takes a text (or a list of texts where ``batch_size`` is above 0) and returns the result.
The adapter calls the init for the device the hardware layer chose, runs the handler on the
model's worker thread (off the event loop), one text at a time unless the file batches, and
checks each output (``outputs``) before it is a result."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from hfserve.backends.placement import Placement
from hfserve.errors import InvalidRequest, ModelUnavailable
from hfserve.plugins import outputs
from hfserve.plugins.files import load_module
from hfserve.skills.base import BatchSkill, Prepared
from hfserve.types import Task

# The seed's names for hardware, by the hardware layer's device kind.
HARDWARE = {"cpu": "cpu", "cuda": "cuda", "rocm": "rocm", "mps": "apple",
            "openvino": "openvino", "qnn": "qualcomm"}
# The seed's task names for text embeddings, as its handler factories spell them.
EMBEDDING_TASKS = ("text_embedding", "embedding", "feature_extraction", "sentence_embedding")
_FACTORY = re.compile(r"^create_([a-z]+)_([a-z0-9_]+)_endpoint_handler$")


def seed_class(module: Any, stem: str) -> type | None:
    """The file's ``hf_<name>`` class, None where it has none."""
    cls = getattr(module, stem, None)
    return cls if isinstance(cls, type) else None


def seed_tasks(cls: type) -> set[str]:
    """The tasks a seed class makes handlers for (``create_<hw>_<task>_endpoint_handler``)."""
    found = (_FACTORY.match(name) for name in dir(cls))
    return {m.group(2) for m in found if m}


class SeedEmbeddingSkill(BatchSkill):
    task: ClassVar[Task] = Task.EMBEDDING
    also_serves: ClassVar[tuple[Task, ...]] = (Task.FEATURE_EXTRACTION,)
    backends: ClassVar[tuple[str, ...]] = ("torch",)
    plugin_file: ClassVar[Path]

    def load(self, placement: Placement) -> None:
        import numpy
        import torch
        import transformers

        self.placement = placement
        module = load_module(self.plugin_file)
        stem = self.plugin_file.stem
        instance = seed_class(module, stem)(
            resources={"torch": torch, "transformers": transformers, "numpy": numpy},
            metadata={"model": str(self.spec.path), "task": self.task.value})
        kind = placement.options.device_kind
        init = getattr(instance, f"init_{HARDWARE.get(kind, kind)}", None)
        if init is None:
            raise ModelUnavailable(f"skill {stem} has no init_{HARDWARE.get(kind, kind)} for "
                                   f"{kind} devices")
        label = placement.device if ":" in placement.device else f"{placement.device}:0"
        found = init(str(self.spec.path), placement.device, label)
        if not isinstance(found, tuple) or len(found) < 3 or not callable(found[2]):
            raise ModelUnavailable(f"skill {stem}'s init_{kind} did not return (endpoint, "
                                   "tokenizer, handler, queue, batch_size)")
        self.endpoint, self.tokenizer, self.handler = found[0], found[1], found[2]
        self.batches = len(found) > 4 and isinstance(found[4], int) and found[4] > 0
        self.name = stem
        self.dimensions = int(self.spec.config.get("hidden_size") or 0)

    def unload(self) -> None:
        self.endpoint = self.tokenizer = self.handler = None

    def info(self) -> dict[str, Any]:
        return {**super().info(), "skill_file": self.plugin_file.name,
                "dimensions": self.dimensions}

    def prepare(self, item: Any, options: dict[str, Any]) -> Prepared:
        if not isinstance(item, str) or not item:
            raise InvalidRequest(f"skill {self.name} takes non-empty text inputs", param="input")
        if options.get("dimensions") or options.get("pooling") == "none":
            raise InvalidRequest(f"skill {self.name} gives whole pooled vectors only",
                                 param="dimensions")
        tokens = (len(self.tokenizer(item)["input_ids"]) if callable(self.tokenizer)
                  else len(item.split()))
        return Prepared(payload=item, cost=max(tokens, 1))

    def run_batch(self, items: list[Prepared]) -> list[Any]:
        texts = [p.payload for p in items]
        if self.batches:
            return outputs.embeddings(self.handler(texts), texts, self.dimensions, self.name)
        rows = []
        for text in texts:
            rows += outputs.embeddings(self.handler(text), [text], self.dimensions, self.name)
        return rows
