"""Decode steps replayed as CUDA graphs over fixed cache slots: on a tiny random Llama in
float32, rows that join and leave the batch give exactly the tokens each prompt gives alone
with transformers ``generate``, and the steps really were captured."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfserve.backends.placement import Placement
from hfserve.engines.torch_lm.slot_kv import SlotKV
from hfserve.skills.generation import GenerationSkill, _cache_kwarg
from hfserve.types import Family, ModelSpec, Task

pytestmark = pytest.mark.gpu

PROMPTS = [[5, 9, 11, 3], [7, 2], [12, 40, 33, 8, 21, 17], [4], [3, 3, 3]]
STEPS = 12


@pytest.fixture(scope="module")
def skill() -> GenerationSkill:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256)
    spec = ModelSpec(name="tiny", source="tiny", path=Path("tiny"),
                     architecture="LlamaForCausalLM", model_type="llama",
                     family=Family.DECODER_ONLY, task=Task.TEXT_GENERATION,
                     tasks=(Task.TEXT_GENERATION,))
    skill = GenerationSkill(spec)
    skill.model = LlamaForCausalLM(config).to("cuda").eval()
    skill.placement = Placement(device="cuda", dtype="float32",
                                options={"max_concurrent": 8})
    skill.cache_kwarg = _cache_kwarg(skill.model)
    skill.max_context = 256
    skill.start_batching(pad_id=0)
    return skill


def test_every_decode_bucket_and_the_common_prefill_buckets_are_captured_at_load(
        skill) -> None:
    assert set(skill.running._graphs) == {1, 2, 4, 8}
    fixed = skill.fixed_prefill
    assert set(fixed.buckets) == {(r, c) for r in (1, 2, 4, 8) for c in (16, 32, 64, 128)}
    assert all(b.graph is not None for b in fixed.buckets.values())


def test_graph_steps_match_generate_as_rows_join_and_leave(skill) -> None:
    from drive import alone, stepped_tokens

    assert isinstance(skill.running, SlotKV) and skill.running.graphs
    expected = [alone(skill, p, STEPS) for p in PROMPTS]
    # 5 rows after three steps: the bucket of 8 slots.
    assert stepped_tokens(skill, PROMPTS, STEPS, [(0, [0, 1]), (3, [2, 3, 4])]) == expected
    assert skill.running.graphs and {2, 8} <= set(skill.running._graphs)
    # The two groups were prefilled by captured graphs of 2 and 4 rows of 16 columns.
    fixed = skill.fixed_prefill
    assert fixed is not None and fixed.graphs
    assert {(2, 16), (4, 16)} <= set(fixed.buckets)
    assert all(b.graph is not None for b in fixed.buckets.values())


def test_overlapped_scheduled_steps_match_generate(skill, monkeypatch) -> None:
    """The scheduler as it runs on CUDA: each step starts before the previous one is
    turned into text, and newcomers wait a few steps to share a prefill."""
    from drive import alone, ids_as_text, scheduled_tokens

    assert skill.overlap_steps and skill.feeds_tokens and skill.prefill_wait_steps > 0
    ids_as_text(monkeypatch, skill)
    lengths = [STEPS - i for i in range(len(PROMPTS))]
    expected = [alone(skill, p, STEPS)[:n] for p, n in zip(PROMPTS, lengths, strict=True)]
    assert scheduled_tokens(skill, PROMPTS, lengths) == expected
    assert skill.running.graphs


def test_prompts_prefilled_in_parts_match_generate_with_overlapped_graph_steps(
        skill, monkeypatch) -> None:
    """A prefill budget of 3 tokens: the 4- and 6-token prompts go in parts between
    captured, overlapped decode steps of the others."""
    from drive import alone, ids_as_text, record_parts, scheduled_tokens

    ids_as_text(monkeypatch, skill)
    monkeypatch.setattr(skill, "prefill_budget", 3)
    parts = record_parts(monkeypatch, skill)
    lengths = [STEPS - i for i in range(len(PROMPTS))]
    expected = [alone(skill, p, STEPS)[:n] for p, n in zip(PROMPTS, lengths, strict=True)]
    assert scheduled_tokens(skill, PROMPTS, lengths) == expected
    assert sorted(parts) == [3, 3] and skill.running.graphs


def test_multistep_groups_of_graph_steps_match_generate(skill, monkeypatch) -> None:
    """Four captured steps queued at a time (the default on CUDA, here for any batch), each
    fed the tokens of the one before on the device."""
    from drive import alone, ids_as_text, scheduled_tokens
    from hfserve.runtime.generation import scheduler

    ids_as_text(monkeypatch, skill)
    monkeypatch.setattr(scheduler, "MULTI_STEP_ROWS", 1)
    assert skill.feeds_tokens and skill.decode_steps == 4
    lengths = [STEPS - i for i in range(len(PROMPTS))]
    expected = [alone(skill, p, STEPS)[:n] for p, n in zip(PROMPTS, lengths, strict=True)]
    assert scheduled_tokens(skill, PROMPTS, lengths) == expected
    assert skill.running.graphs
