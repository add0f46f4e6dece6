"""Decode steps replayed as CUDA graphs over fixed cache slots: on a tiny random Llama in
float32, rows that join and leave the batch give exactly the tokens each prompt gives alone
with transformers ``generate``, and the steps really were captured."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfserve.skills.base import Placement
from hfserve.skills.generation import GenerationSkill, _cache_kwarg
from hfserve.skills.slot_kv import SlotKV
from hfserve.types import Family, ModelSpec, Pick, SamplingParams, Task

pytestmark = pytest.mark.gpu

PROMPTS = [[5, 9, 11, 3], [7, 2], [12, 40, 33, 8, 21, 17], [4], [3, 3, 3]]
STEPS = 12
GREEDY = SamplingParams(temperature=0)


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
    skill.cache_kwarg = _cache_kwarg()
    skill.max_context = 256
    skill.start_batching(pad_id=0)
    return skill


def greedy(skill: GenerationSkill, logits, rows: int) -> list[int]:
    return [c.token_id for c in skill.sample(logits, [Pick(i, GREEDY, None, [])
                                                      for i in range(rows)])]


def alone(skill: GenerationSkill, prompt: list[int]) -> list[int]:
    import torch

    with torch.inference_mode():
        out = skill.model.generate(torch.tensor([prompt], device="cuda"),
                                   max_new_tokens=STEPS, do_sample=False, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def test_graph_steps_match_generate_as_rows_join_and_leave(skill) -> None:
    assert isinstance(skill.running, SlotKV) and skill.running.graphs
    expected = [alone(skill, p) for p in PROMPTS]
    got: dict[int, list[int]] = {}
    live: list[tuple[int, object]] = []

    def join(indexes: list[int]) -> None:
        states, logits, _ = skill.prefill([PROMPTS[i] for i in indexes], [None] * len(indexes))
        for i, state, token in zip(indexes, states, greedy(skill, logits, len(indexes)),
                                   strict=True):
            got[i] = [token]
            live.append((i, state))

    def step() -> None:
        logits = skill.decode([s for _, s in live], [got[i][-1] for i, _ in live])
        for (i, _), token in zip(live, greedy(skill, logits, len(live)), strict=True):
            got[i].append(token)
        for i, state in list(live):
            if len(got[i]) == STEPS:
                skill.release(state)
                live.remove((i, state))

    join([0, 1])
    for _ in range(3):
        step()
    join([2, 3, 4])        # 5 rows: a bucket of 8 slots, captured on first use
    while live:
        step()
    assert [got[i] for i in range(len(PROMPTS))] == expected
    assert skill.running.graphs and {2, 8} <= set(skill.running._graphs)


def test_overlapped_scheduled_steps_match_generate(skill, monkeypatch) -> None:
    """The scheduler as it runs on CUDA: each step starts before the previous one is
    turned into text, and newcomers wait a few steps to share a prefill."""
    from scheduled import scheduled_tokens

    assert skill.overlap_steps and skill.prefill_wait_steps > 0
    monkeypatch.setattr(skill, "decode_tokens", lambda ids: " ".join(map(str, ids)),
                        raising=False)
    monkeypatch.setattr(skill, "eos_token_ids", frozenset(), raising=False)
    lengths = [STEPS - i for i in range(len(PROMPTS))]
    expected = [alone(skill, p)[:n] for p, n in zip(PROMPTS, lengths, strict=True)]
    assert scheduled_tokens(skill, PROMPTS, lengths) == expected
    assert skill.running.graphs
