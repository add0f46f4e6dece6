"""Decode attention over grouped key/value heads (engines/torch_lm/grouped_attention.py) gives what
transformers' SDPA attention gives with the heads repeated, and leaves other calls to it."""

from __future__ import annotations

import types

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from hfserve.engines.torch_lm.grouped_attention import (
    NAME,
    grouped_decode_attention,
    use_grouped_decode,
)


def inputs(rows: int, length: int, heads: int = 9, kv_heads: int = 3, columns: int = 20):
    torch.manual_seed(0)
    query = torch.randn(rows, heads, length, 16)
    key, value = torch.randn(2, rows, kv_heads, columns, 16)
    visible = torch.rand(rows, 1, length, columns) > 0.3
    visible[..., -1] = True                     # every row sees at least one column
    module = types.SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True)
    return module, query, key, value, visible


@pytest.mark.parametrize("float_mask", [False, True], ids=["bool mask", "float mask"])
def test_one_token_steps_match_repeated_heads(float_mask) -> None:
    module, query, key, value, mask = inputs(rows=5, length=1)
    if float_mask:
        mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    mine, _ = grouped_decode_attention(module, query, key, value, mask, scaling=0.25)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    assert mine.shape == theirs.shape == (5, 1, 9, 16)
    assert torch.allclose(mine, theirs, atol=1e-5)


def test_prompts_go_to_transformers_sdpa() -> None:
    module, query, key, value, mask = inputs(rows=2, length=4, columns=4)
    mine, _ = grouped_decode_attention(module, query, key, value, mask)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask)
    assert torch.equal(mine, theirs)


def test_only_grouped_sdpa_models_switch() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    def model(kv_heads: int, attention: str = "sdpa"):
        config = LlamaConfig(vocab_size=32, hidden_size=32, intermediate_size=32,
                             num_hidden_layers=1, num_attention_heads=4,
                             num_key_value_heads=kv_heads, attn_implementation=attention)
        return LlamaForCausalLM(config)

    grouped = model(2)
    assert use_grouped_decode(grouped) and grouped.config._attn_implementation == NAME
    assert not use_grouped_decode(model(4))                  # no groups: nothing to save
    assert not use_grouped_decode(model(2, "eager"))
