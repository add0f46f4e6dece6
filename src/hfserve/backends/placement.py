"""Where and how a model runs, as the runtime decides it and every backend and skill reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Placement:
    """Where and how a skill runs: the runtime fills this from the hardware layer."""

    device: str = "cpu"          # torch device string
    dtype: str = "float32"
    threads: int | None = None
    backend: str = "torch"
    options: dict[str, Any] = field(default_factory=dict)
