"""Decode-step attention for grouped-query models without copying keys and values per query
head.

transformers' SDPA attention repeats each key/value head for the query heads that share it
(``repeat_kv``) whenever a mask is given, and a batch of running sequences always has one.
For one new token per row that copy is most of a decode step's memory traffic: at 256 rows
over 256 cached columns, SmolLM2 (9 query heads on 3 key/value heads) writes and reads about
three times the cache in every layer. With one query token, the query heads of a group can
instead stand as that group's query *positions*: ``[rows, kv heads, group, dim]`` against
the unrepeated ``[rows, kv heads, columns, dim]`` keys, under the same mask for every
position. It is the same arithmetic, row by row, with no copy.

Registered through transformers' ``AttentionInterface`` (and the SDPA mask builder under the
same name), so a model switches with ``set_attn_implementation``; every call that is not a
one-token grouped step (prefill, dropout) goes to transformers' own SDPA function."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

NAME = "hfserve_grouped_sdpa"


def grouped_decode_attention(module: Any, query: Any, key: Any, value: Any,
                             attention_mask: Any, dropout: float = 0.0,
                             scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    rows, heads, length, dim = query.shape
    if length != 1 or groups == 1 or dropout or kwargs.get("output_attentions"):
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    # Query head h*groups + r reads key/value head h (repeat_kv's order).
    grouped = query.view(rows, heads // groups, groups, dim)
    out = torch.nn.functional.scaled_dot_product_attention(
        grouped, key, value, attn_mask=attention_mask, scale=scaling)
    return out.reshape(rows, heads, 1, dim).transpose(1, 2).contiguous(), None


def use_grouped_decode(model: Any) -> bool:
    """Switch ``model`` from SDPA to the grouped decode attention where it has grouped
    key/value heads; False (and the model unchanged) where it does not, or where this
    transformers version refuses the switch."""
    config = model.config
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not heads or not kv_heads \
            or kv_heads >= heads:
        return False
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

        AttentionInterface.register(NAME, grouped_decode_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
        model.set_attn_implementation(NAME)
    except Exception as exc:  # an older or newer transformers: keep its own SDPA
        log.warning("grouped decode attention unavailable: %s: %s", type(exc).__name__, exc)
        return False
    return config._attn_implementation == NAME
