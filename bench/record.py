"""The JSON record every benchmark script writes: how it was started, and a JSON-safe copy
of its results."""

from __future__ import annotations

import math
import time
from argparse import Namespace
from pathlib import Path
from typing import Any


def start(args: Namespace) -> dict[str, Any]:
    """A new record: the script's options (paths as text) and the start time."""
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return {"config": config, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
