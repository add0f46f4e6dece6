"""Sentence-embedding pooling as sentence-transformers configures it (1_Pooling/config.json,
a Normalize module in modules.json). Reads the model's files; never guesses past them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_lasttoken": "lasttoken",
}


@dataclass(frozen=True)
class PoolingConfig:
    mode: str = "mean"
    normalize: bool = False
    max_seq_length: int | None = None


def read_pooling(folder: Path) -> PoolingConfig:
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return PoolingConfig()
    modules = json.loads(modules_file.read_text())
    mode, normalize = "mean", False
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            cfg_file = folder / module.get("path", "") / "config.json"
            if cfg_file.is_file():
                cfg = json.loads(cfg_file.read_text())
                mode = cfg.get("pooling_mode") or next(
                    (name for key, name in POOLING_KEYS.items() if cfg.get(key)), "mean")
        elif kind.endswith("Normalize"):
            normalize = True
    st_file = folder / "sentence_bert_config.json"
    max_len = json.loads(st_file.read_text()).get("max_seq_length") if st_file.is_file() \
        else None
    return PoolingConfig(mode=mode, normalize=normalize, max_seq_length=max_len)


def _mean(hidden, mask):
    summed = (hidden * mask).sum(dim=1)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


def _mean_sqrt_len(hidden, mask):
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9).sqrt()


def _max(hidden, mask):
    return hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values


def _cls(hidden, mask):
    return hidden[:, 0]


def _lasttoken(hidden, mask):
    # Works for right padding: index of the last real token in each row.
    last = mask.squeeze(-1).sum(dim=1).long() - 1
    return hidden[range(hidden.shape[0]), last]


POOLERS = {"mean": _mean, "mean_sqrt_len": _mean_sqrt_len, "max": _max, "cls": _cls,
           "lasttoken": _lasttoken}


def pool(mode: str, hidden, attention_mask):
    """(batch, seq, dim) hidden states -> (batch, dim) sentence embeddings."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return POOLERS[mode](hidden, mask)


def shorten(row: Any, dimensions: int | None, normalize: bool) -> Any:
    """An embedding cut to its first ``dimensions`` (OpenAI's ``dimensions``), normalised
    again where the model's embeddings are."""
    if not dimensions or dimensions >= row.shape[0]:
        return row
    import numpy as np

    row = row[:dimensions]
    return row / max(float(np.linalg.norm(row)), 1e-12) if normalize else row
