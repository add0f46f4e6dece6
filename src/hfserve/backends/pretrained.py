"""The keyword arguments every ``from_pretrained`` gets from the model's settings, so that no
load runs a folder's custom code or unpickles weights unless the model allows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hfserve.registry.weights import safetensors_files
from hfserve.types import ModelSpec


def trust_remote_code(spec: ModelSpec) -> bool:
    return bool(spec.options.get("trust_remote_code", False))


def tokenizer_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """For tokenizers, configs and processors."""
    return {"trust_remote_code": trust_remote_code(spec)}


def model_kwargs(spec: ModelSpec, folder: Path | None = None) -> dict[str, Any]:
    """For model weights read from ``folder`` (default: the spec's): safetensors only where
    the folder has them, so that a pickle beside them is never read."""
    kwargs = tokenizer_kwargs(spec)
    folder = spec.path if folder is None else folder
    if (folder != spec.path or not spec.gguf_file) and safetensors_files(folder):
        kwargs["use_safetensors"] = True
    return kwargs
