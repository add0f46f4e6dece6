"""Loading a transformers model onto a torch device with the chosen dtype."""

from __future__ import annotations

from typing import Any

from hfserve.skills.base import Placement
from hfserve.types import ModelSpec


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16,
            "bfloat16": torch.bfloat16}[name]


def load_torch_model(auto_class: Any, spec: ModelSpec, placement: Placement):
    """``auto_class.from_pretrained`` on the spec's files, moved to the placement, eval mode."""

    model = auto_class.from_pretrained(
        str(spec.path),
        gguf_file=spec.gguf_file,
        dtype=torch_dtype(placement.dtype),
        trust_remote_code=bool(spec.options.get("trust_remote_code")),
    )
    return model.to(placement.device).eval()
