"""A model's identity on disk, for caches of what it computes or what was made from it."""

from __future__ import annotations

from typing import Any

from hfserve.types import ModelSpec


def source_identity(spec: ModelSpec) -> list[Any]:
    """The weight and config files' names, sizes and modification times (the GGUF file
    alone for a GGUF model): a model edited on disk gets another identity."""
    files = [spec.path / spec.gguf_file] if spec.gguf_file else sorted(
        p for p in spec.path.iterdir() if p.suffix in (".json", ".safetensors", ".bin"))
    return [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in files if p.is_file()]
