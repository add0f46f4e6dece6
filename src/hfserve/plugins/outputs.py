"""What a seed skill file's handler returns, checked before it becomes a result. Seed
handlers fall back to canned output when their model fails (a zero vector, a dict marked
``"implementation_type": "MOCK"``); such output is an error here, never a result."""

from __future__ import annotations

from typing import Any

import numpy as np

from hfserve.errors import InvalidPluginOutput

MARKERS = ("mock", "placeholder", "dummy", "fake", "simulated")
KEYS = ("embeddings", "embedding", "output", "hidden_states", "last_hidden_state")


def _marked(output: Any) -> str | None:
    """The mock marker a handler's dict or text carries, if any."""
    if isinstance(output, dict):
        for key in ("implementation_type", "implementation", "status", "type"):
            value = str(output.get(key, "")).lower()
            if any(marker in value for marker in MARKERS):
                return f"{key}={output[key]!r}"
    if isinstance(output, str) and any(marker in output.lower() for marker in MARKERS):
        return repr(output[:40])
    return None


def _array(output: Any) -> np.ndarray:
    if isinstance(output, dict):
        key = next((k for k in KEYS if k in output), None)
        if key is None:
            raise InvalidPluginOutput(f"the skill's handler returned a dict without any of "
                                      f"{', '.join(KEYS)}")
        output = output[key]
    if hasattr(output, "detach"):              # a torch tensor
        output = output.detach().float().cpu().numpy()
    try:
        return np.asarray(output, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidPluginOutput(f"the skill's handler returned {type(output).__name__}, "
                                  "not vectors") from None


def embeddings(output: Any, texts: list[str], width: int, skill: str) -> list[np.ndarray]:
    """One vector per text, each ``width`` wide, finite and not a placeholder."""
    marker = _marked(output)
    if marker:
        raise InvalidPluginOutput(f"skill {skill} returned placeholder output ({marker}), not "
                                  "a result: its model did not run")
    rows = _array(output)
    if rows.ndim == 1 and len(texts) == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or rows.shape[0] != len(texts):
        raise InvalidPluginOutput(f"skill {skill} returned shape {tuple(rows.shape)} for "
                                  f"{len(texts)} inputs: one vector per input is needed")
    if width and rows.shape[1] != width:
        raise InvalidPluginOutput(f"skill {skill} returned vectors of {rows.shape[1]} values; "
                                  f"the model's hidden size is {width}")
    if not np.isfinite(rows).all():
        raise InvalidPluginOutput(f"skill {skill} returned NaN or infinite values")
    constant = np.all(rows == rows[:, :1], axis=1)
    if constant.any():
        raise InvalidPluginOutput(f"skill {skill} returned a constant vector (all "
                                  f"{float(rows[int(np.argmax(constant)), 0])}): a placeholder,"
                                  " not an embedding")
    if len(set(texts)) > 1 and np.all(rows == rows[:1]):
        raise InvalidPluginOutput(f"skill {skill} returned the same vector for different "
                                  "inputs: a placeholder, not an embedding")
    return list(rows)
