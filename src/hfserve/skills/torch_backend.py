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

    if placement.device.startswith("cuda"):
        shape_free_attention()
    model = auto_class.from_pretrained(
        str(spec.path),
        gguf_file=spec.gguf_file,
        dtype=torch_dtype(placement.dtype),
        trust_remote_code=bool(spec.options.get("trust_remote_code")),
    )
    return model.to(placement.device).eval()


def shape_free_attention() -> None:
    """Keep scaled-dot-product attention off cuDNN. torch 2.11 sends attention with a
    padding mask to cuDNN first, and cuDNN builds an execution plan (hundreds of ms) for
    every new (batch, length) shape; a server's shapes change at nearly every step, so the
    memory-efficient and flash kernels, which need no plan, serve it better. The switch is
    process-wide: generation models run in a process of their own."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)
