"""One forward over encodings of different lengths: right-padded into one batch, so each
item's logits are its own first rows (what the pipelines' pre/postprocess steps expect)."""

from __future__ import annotations

from typing import Any

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def padded_logits(model: Any, encodings: list[dict[str, Any]], pad_id: int,
                  device: str) -> Any:
    """``encodings``: the tokenizer's tensors (batch of one) per item; returns float logits
    on the CPU with a row per item, padded to the longest."""
    import torch

    names = [k for k in INPUT_NAMES if k in encodings[0]]
    longest = max(int(e["input_ids"].shape[1]) for e in encodings)
    batch = {k: torch.stack([torch.nn.functional.pad(
        e[k][0], (0, longest - e[k].shape[1]), value=pad_id if k == "input_ids" else 0)
        for e in encodings]).to(device) for k in names}
    with torch.inference_mode():
        return model(**batch).logits.float().cpu()
