"""A model's identity on disk, for caches of what it computes or what was made from it."""

from __future__ import annotations

from typing import Any

from hfserve.registry.pipeline import component_folders
from hfserve.types import ModelSpec


def source_identity(spec: ModelSpec) -> list[Any]:
    """The weight and config files' names, sizes and modification times (the GGUF file
    alone for a GGUF model, every component's for a diffusers pipeline): a model edited on
    disk gets another identity."""
    files = [spec.path / spec.gguf_file] if spec.gguf_file else sorted(
        p for folder in component_folders(spec.path) for p in folder.iterdir()
        if p.suffix in (".json", ".safetensors", ".bin"))
    return [[str(p.relative_to(spec.path)), p.stat().st_size, int(p.stat().st_mtime)]
            for p in files if p.is_file()]
