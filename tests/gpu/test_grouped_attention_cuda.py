"""Grouped decode attention on CUDA: the shapes of a 256-row SmolLM2 step in bfloat16 give what
transformers' SDPA gives with the key/value heads repeated."""

from __future__ import annotations

import types

import pytest

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_grouped_decode_matches_repeated_heads_on_cuda(dtype) -> None:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from hfserve.engines.torch_lm.grouped_attention import grouped_decode_attention

    torch.manual_seed(0)
    kind = getattr(torch, dtype)
    rows, heads, kv_heads, columns, dim = 256, 9, 3, 256, 64
    query = torch.randn(rows, heads, 1, dim, device="cuda", dtype=kind)
    key, value = torch.randn(2, rows, kv_heads, columns, dim, device="cuda", dtype=kind)
    starts = torch.randint(0, columns - 1, (rows,), device="cuda")
    positions = torch.arange(columns, device="cuda")
    mask = (positions[None, :] >= starts[:, None])[:, None, None, :]
    module = types.SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True)
    mine, _ = grouped_decode_attention(module, query, key, value, mask, scaling=dim ** -0.5)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=dim ** -0.5)
    tolerance = 2e-2 if dtype == "bfloat16" else 1e-5
    assert mine.shape == theirs.shape == (rows, 1, heads, dim)
    assert torch.allclose(mine.float(), theirs.float(), atol=tolerance, rtol=tolerance)
