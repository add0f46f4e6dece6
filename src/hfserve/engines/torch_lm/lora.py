"""LoRA adapters on a loaded causal LM, several of them in one batch.

peft injects each adapter's A and B matrices beside the target layers of the one base model
(its weights are never copied or merged), and every forward names each row's adapter: peft's
mixed-batch ``adapter_names`` splits the rows by adapter inside each LoRA layer and adds
``scale * B(A(x))`` to the base layer's output for those rows only, so a batch may hold
rows of different adapters and rows of none. A row's result is then the merged model's
(``merge_and_unload``) up to rounding. peft's own because it is the library made for this:
it reads every adapter format ``save_pretrained`` writes (ranks, alphas, rsLoRA, targets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# peft's name for the rows of a mixed batch that take no adapter.
BASE = "__base__"


class LoraAdapters:
    """The adapters loaded on ``model``, by name. Until the first one is added the model runs
    as it was loaded; after the last one is removed, peft's layers are taken out again."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.peft: Any = None
        self.paths: dict[str, str] = {}

    @property
    def active(self) -> bool:
        return self.peft is not None

    def add(self, name: str, path: str) -> None:
        """Load the adapter saved at ``path`` (a peft ``save_pretrained`` folder) as ``name``."""
        from peft import PeftModel

        if name in self.paths:
            raise ValueError(f"an adapter named {name!r} is loaded already")
        if not (Path(path) / "adapter_config.json").is_file():
            raise ValueError(f"adapter {name!r} has no adapter_config.json")
        if self.peft is None:
            self.peft = PeftModel.from_pretrained(self.model, path, adapter_name=name,
                                                  is_trainable=False)
        else:
            self.peft.load_adapter(path, adapter_name=name, is_trainable=False)
        self.peft.eval()
        self.paths[name] = path

    def remove(self, name: str) -> None:
        if name not in self.paths:
            return
        del self.paths[name]
        if self.paths:
            self.peft.delete_adapter(name)
            return
        # The last one: the plain model again, without peft's layers and their hooks.
        self.model = self.peft.unload()
        self.peft = None

    def __call__(self, adapters: list[str | None], **inputs: Any) -> Any:
        """The model's forward on ``inputs`` whose row ``i`` takes adapter ``adapters[i]``
        (None: the base model; rows past the list, e.g. a bucket's empty slots, too). A row
        whose adapter is not loaded fails the forward: never the base model's answer."""
        missing = {a for a in adapters if a is not None} - self.paths.keys()
        if missing:
            raise KeyError(f"LoRA adapter {sorted(missing)[0]!r} is not loaded")
        if self.peft is None:
            return self.model(**inputs)
        rows = inputs["input_ids"].shape[0]
        names = [a or BASE for a in adapters[:rows]] + [BASE] * (rows - len(adapters))
        return self.peft(**inputs, adapter_names=names)
