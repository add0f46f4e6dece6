"""The torch generation skill's stages on a tiny random Llama: rows prefilled together,
joining and leaving the running batch, give the tokens each prompt gives alone, with a growing
cache and with fixed cache slots (what CUDA graphs replay; eager here); batched sampling
honours each row's own params and seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import drive
from drive import GREEDY, greedy, scheduled_tokens, stepped_tokens
from hfserve.backends.placement import BackendOptions, Placement
from hfserve.engines.torch_lm import prefill_graphs, slot_kv
from hfserve.engines.torch_lm.grouped_attention import NAME as GROUPED
from hfserve.engines.torch_lm.kv_batch import KVBatch
from hfserve.engines.torch_lm.slot_kv import SlotKV, bucket
from hfserve.runtime.generation import scheduler
from hfserve.skills.generation import GenerationSkill, _cache_kwarg
from hfserve.types import Family, ModelSpec, Pick, SamplingParams, Task

PROMPTS = [[5, 9, 11, 3], [7, 2], [12, 40, 33, 8, 21, 17], [4]]
STEPS = 8


def make_skill(options: dict, max_context: int = 128) -> GenerationSkill:
    """A tiny random Llama behind the torch generation skill, batching set up on the CPU."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128)
    spec = ModelSpec(name="tiny", source="tiny", path=Path("tiny"),
                     architecture="LlamaForCausalLM", model_type="llama",
                     family=Family.DECODER_ONLY, task=Task.TEXT_GENERATION,
                     tasks=(Task.TEXT_GENERATION,))
    skill = GenerationSkill(spec)
    skill.model = LlamaForCausalLM(config).eval()
    skill.placement = Placement(options=BackendOptions(**options))
    skill.cache_kwarg = _cache_kwarg(skill.model)
    skill.max_context = max_context
    skill.start_batching(pad_id=0)
    return skill


# The tiny Llama's keys and values: 2 layers x 2 (key, value) x 2 heads x 8 dims x 4 bytes.
TOKEN_BYTES = 2 * 2 * 2 * 8 * 4


def test_slots_fit_the_kv_cache_memory_by_shortening_the_context() -> None:
    skill = make_skill({"cuda_graphs": True, "max_concurrent": 8,
                        "kv_cache_memory": 8 * 300 * TOKEN_BYTES}, max_context=1024)
    assert isinstance(skill.running, SlotKV)
    assert skill.running.max_columns == 300
    assert skill.max_context == 299
    info = skill.info()
    assert info["max_context"] == 299     # what /v1/models/{id} shows
    assert info["kv_cache"] == {"slots": 8, "max_tokens_per_slot": 300,
                                "max_bytes": 8 * 300 * TOKEN_BYTES}
    # On the CPU: eager steps, one at a time, eager prefill.
    assert info["steps"] == {"decode_graphs": False, "prefill_graphs": False,
                             "fixed_shape_prefill": False, "decode_steps": 1}


def test_on_cuda_the_default_kv_budget_leaves_room_for_captured_prefill(monkeypatch) -> None:
    """KV_SHARE of the free memory, less the cap on what captured prefill buckets hold."""
    from hfserve.skills import generation

    monkeypatch.setattr(generation, "_free_memory", lambda device: 10 << 30)
    skill = make_skill({})
    skill.max_context = 1 << 40
    per_column = 8 * TOKEN_BYTES
    for options, budget in [({}, 0.9 * (10 << 30) - (1 << 30)),
                            ({"prefill_graphs": False}, 0.9 * (10 << 30)),
                            ({"kv_cache_memory": 1 << 30}, 1 << 30)]:
        skill.placement = Placement(device="cuda:0", options=BackendOptions(**options))
        assert skill._slot_columns(8) == int(budget // per_column)
    skill.placement = Placement(device="cpu", options=BackendOptions())
    assert skill._slot_columns(8) == int(0.9 * (10 << 30) // per_column)


def test_slots_that_cannot_hold_a_useful_context_give_way_to_the_growing_batch() -> None:
    skill = make_skill({"cuda_graphs": True, "max_concurrent": 8,
                        "kv_cache_memory": 8 * 100 * TOKEN_BYTES}, max_context=1024)
    assert isinstance(skill.running, KVBatch)
    assert skill.max_context == 1024
    assert "kv_cache" not in skill.info()


def test_slots_keep_the_whole_context_when_it_fits() -> None:
    skill = make_skill({"cuda_graphs": True, "max_concurrent": 8})    # host memory: plenty
    assert skill.running.max_columns == 129 and skill.max_context == 128


@pytest.fixture(scope="module", params=["growing", "slots", "slots, fixed prefill"])
def skill(request) -> GenerationSkill:
    slots = request.param != "growing"
    skill = make_skill({"cuda_graphs": slots, "max_concurrent": 8,
                        "prefill_graphs": request.param == "slots, fixed prefill"})
    assert isinstance(skill.running, SlotKV if slots else KVBatch)
    assert (skill.fixed_prefill is not None) == (request.param == "slots, fixed prefill")
    # Both decode with grouped attention (2 key/value heads for 4 query heads).
    assert skill.model.config._attn_implementation == GROUPED
    return skill


def test_newcomers_are_not_held_back_on_the_cpu_unless_configured() -> None:
    assert make_skill({}).prefill_wait_steps == 0
    assert make_skill({"prefill_wait_steps": 7}).prefill_wait_steps == 7


def test_steps_are_queued_one_at_a_time_on_the_cpu_unless_configured() -> None:
    """Feeding tokens on the device and multistep groups are for an asynchronous device."""
    skill = make_skill({"cuda_graphs": True})
    assert not skill.feeds_tokens and skill.decode_steps == 1
    assert make_skill({"cuda_graphs": True, "decode_steps": 8}).decode_steps == 8


def test_the_prefill_budget_is_512_tokens_on_the_cpu_unless_configured() -> None:
    assert make_skill({}).prefill_budget == 512
    assert make_skill({"max_prefill_tokens": 100}).prefill_budget == 100


def alone(skill: GenerationSkill, prompt: list[int]) -> list[int]:
    return drive.alone(skill, prompt, STEPS)


def test_rows_joining_and_leaving_the_batch_match_each_prompt_alone(skill) -> None:
    expected = [alone(skill, p) for p in PROMPTS]
    # A longer prompt joins a batch already two steps in.
    assert stepped_tokens(skill, PROMPTS, STEPS, [(0, [0, 1]), (2, [2, 3])]) == expected
    assert skill.running.rows == []             # every row released: nothing held


def test_a_row_released_early_leaves_the_others_unchanged(skill) -> None:
    expected = alone(skill, PROMPTS[2])
    states, logits, _ = skill.prefill([PROMPTS[2], PROMPTS[0]], [None, None])
    tokens = greedy(skill, logits, 2)
    mine = [tokens[0]]
    skill.release(states[1])
    for _ in range(STEPS - 1):
        logits = skill.decode([states[0]], [mine[-1]])
        mine += greedy(skill, logits, 1)
    skill.release(states[0])
    assert mine == expected


def test_batched_sampling_uses_each_rows_params_and_seed(skill) -> None:
    states, logits, _ = skill.prefill([PROMPTS[0], PROMPTS[1]], [None, None])
    for state in states:
        skill.release(state)
    warm = SamplingParams(temperature=1.5, top_p=0.9)

    def draw(seed: int) -> list[int]:
        picks = [Pick(0, warm, skill.new_generator(seed), []),
                 Pick(1, SamplingParams(temperature=0, logprobs=2), None, []),
                 Pick(0, SamplingParams(temperature=2.0, top_k=1), skill.new_generator(seed),
                      [])]
        return skill.sample(logits, picks)

    first, second = draw(11), draw(11)
    assert [c.token_id for c in first] == [c.token_id for c in second]
    argmax = logits.float().argmax(-1).tolist()
    assert first[1].token_id == argmax[1] and first[2].token_id == argmax[0]
    reference = torch.log_softmax(logits[1].float(), -1)
    assert first[1].logprob == pytest.approx(float(reference[argmax[1]]), abs=1e-5)
    assert [t for t, _ in first[1].top] == reference.topk(2).indices.tolist()
    assert first[0].logprob is None and first[0].top is None
    draws = {c.token_id for seed in range(40) for c in draw(seed)[:1]}
    assert len(draws) > 1                      # temperature 1.5 really samples


def test_penalties_change_only_their_own_row(skill) -> None:
    states, logits, _ = skill.prefill([PROMPTS[0]], [None])
    skill.release(states[0])
    top = int(logits[0].argmax())
    penalised = SamplingParams(temperature=0, presence_penalty=2.0, frequency_penalty=2.0)
    plain, penalty = skill.sample(logits, [Pick(0, GREEDY, None, [top]),
                                           Pick(0, penalised, None, [top] * 50)])
    assert plain.token_id == top
    assert penalty.token_id != top


def test_models_on_cuda_keep_attention_off_cudnn(monkeypatch) -> None:
    """cuDNN builds a plan per attention shape; a CUDA placement switches it off."""
    from hfserve.backends.torch_backend import load_torch_model

    class Auto:
        @staticmethod
        def from_pretrained(path, **kw):
            return torch.nn.Identity()

    monkeypatch.setattr(torch.nn.Identity, "to", lambda self, device: self, raising=False)
    spec = ModelSpec(name="x", source="x", path=Path("x"), architecture="X", model_type="x",
                     family=Family.DECODER_ONLY, task=Task.TEXT_GENERATION,
                     tasks=(Task.TEXT_GENERATION,))
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        load_torch_model(Auto, spec, Placement(device="cpu", dtype="float32"))
        assert torch.backends.cuda.cudnn_sdp_enabled()
        load_torch_model(Auto, spec, Placement(device="cuda:0", dtype="bfloat16"))
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(True)


def test_slots_shift_and_grow_when_columns_run_out(skill, monkeypatch) -> None:
    """With 4 columns to start from, rows joining and decoding past the end make the slot
    cache shift rows left and grow; tokens still match each prompt alone."""
    if not isinstance(skill.running, SlotKV):
        pytest.skip("growing cache")
    monkeypatch.setattr(slot_kv, "MIN_COLUMNS", 4)
    skill.start_batching(pad_id=0)
    expected = [alone(skill, p) for p in PROMPTS[:3]]
    states, logits, _ = skill.prefill([PROMPTS[1]], [None])
    got = {1: greedy(skill, logits, 1)}
    live = [(1, states[0])]
    for step in range(STEPS - 1):
        if step == 2:     # longer prompts join a row whose column is past their length
            states, logits, _ = skill.prefill([PROMPTS[0], PROMPTS[2]], [None, None])
            for i, state, token in zip((0, 2), states, greedy(skill, logits, 2), strict=True):
                got[i] = [token]
                live.append((i, state))
        logits = skill.decode([s for _, s in live], [got[i][-1] for i, _ in live])
        for (i, _), token in zip(live, greedy(skill, logits, len(live)), strict=True):
            got[i].append(token)
    while any(len(got[i]) < STEPS for i, _ in live):
        live = [(i, s) for i, s in live if len(got[i]) < STEPS]
        logits = skill.decode([s for _, s in live], [got[i][-1] for i, _ in live])
        for (i, _), token in zip(live, greedy(skill, logits, len(live)), strict=True):
            got[i].append(token)
    assert [got[i] for i in range(3)] == expected
    assert skill.running.columns > 4


def test_fixed_prefill_pads_groups_to_power_of_two_buckets(skill) -> None:
    """Three prompts of up to 6 tokens run as 4 rows of 16 columns; a prompt asking for
    prompt logprobs needs every position's logits and stays with the eager prefill."""
    fixed = skill.fixed_prefill
    if fixed is None:
        pytest.skip("eager prefill")
    states, logits, _ = skill.prefill(PROMPTS[:3], [None] * 3)
    assert logits.shape[0] == 3 and (4, 16) in fixed.buckets
    for state in states:
        skill.release(state)
    saved = dict(fixed.buckets)
    fixed.buckets.clear()
    states, _, choices = skill.prefill([PROMPTS[0]], [2])
    skill.release(states[0])
    assert choices[0] is not None and not fixed.buckets
    fixed.buckets.update(saved)


def test_fixed_prefill_keeps_to_its_token_cap(skill) -> None:
    fixed = skill.fixed_prefill
    if fixed is None:
        pytest.skip("eager prefill")
    assert fixed.fits([[1] * 100] * 4)                  # 4 x 128 = 512 tokens
    assert not fixed.fits([[1] * 100] * 5)              # 8 x 128
    held, fixed.held = fixed.held, fixed.max_held - 100   # the buckets' memory nearly full
    try:
        assert fixed.fits(PROMPTS[:3])                    # a bucket it has: still runs
        assert not fixed.fits([[1] * 100] * 4)            # a new one would not fit
    finally:
        fixed.held = held


def test_graphs_are_captured_when_the_model_loads(monkeypatch) -> None:
    """Where steps replay as CUDA graphs, every decode bucket and the common prefill buckets
    (within the prefill budget: 512 tokens here) are captured at start-up, not on first
    use. A stand-in capture runs each step once on the CPU."""
    class Graph:
        def replay(self) -> None:
            raise AssertionError("nothing replays here")

    shapes: list[str] = []

    def capture(step, logits_of, device, pool):
        out = step()
        shapes.append("x".join(map(str, logits_of(out).shape)))
        return Graph(), out

    monkeypatch.setattr(slot_kv, "capture", capture)
    monkeypatch.setattr(prefill_graphs, "capture", capture)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    skill = make_skill({"cuda_graphs": True, "prefill_graphs": True, "max_concurrent": 8})
    assert not shapes                       # on the CPU nothing is captured
    skill.running.graphs = skill.fixed_prefill.graphs = True
    skill._capture_graphs()
    assert set(skill.running._graphs) == {1, 2, 4, 8}
    fixed = skill.fixed_prefill
    assert set(fixed.buckets) == {(r, c) for r in (1, 2, 4, 8) for c in (16, 32, 64, 128)
                                  if r * c <= 512}
    assert all(b.graph is not None for b in fixed.buckets.values())
    assert len(shapes) == 4 + len(fixed.buckets) and "8x64" in shapes   # 8 slots' logits
    assert fixed.held == sum(r * c for r, c in fixed.buckets)
    # Failing to capture at load (out of memory, say) leaves the model serving.
    fixed.buckets.clear()
    monkeypatch.setattr(fixed, "_bucket", lambda rows, columns: 1 / 0)
    skill._capture_graphs()
    assert not fixed.buckets and skill.running.graphs


def test_decode_order_follows_the_states_given(skill) -> None:
    """Logit rows come back in the order the states are passed, whatever their places."""
    def two_steps(swap: bool):
        states, _, _ = skill.prefill([PROMPTS[0], PROMPTS[2]], [None, None])
        skill.decode(states, [1, 2])
        order = states[::-1] if swap else states
        logits = skill.decode(order, [4, 3] if swap else [3, 4])
        for state in states:
            skill.release(state)
        return logits

    straight, swapped = two_steps(False), two_steps(True)
    assert torch.allclose(straight, swapped.flip(0), atol=1e-5)
    assert not torch.allclose(straight[0], straight[1], atol=1e-3)


def test_buckets_are_powers_of_two_up_to_the_slots() -> None:
    assert [bucket(n, 256) for n in (1, 2, 3, 5, 64, 65, 200)] == [1, 2, 4, 8, 64, 128, 256]
    assert bucket(300, 256) == 256 and bucket(5, 6) == 6


def test_a_model_that_fails_on_slots_keeps_the_growing_batch(skill, monkeypatch) -> None:
    if not isinstance(skill.running, SlotKV):
        pytest.skip("growing cache")

    def refuse(self, *args, **kwargs):
        raise TypeError("this cache is not supported")

    monkeypatch.setattr(slot_kv.SlotCache, "update", refuse)
    skill.start_batching(pad_id=0)
    assert isinstance(skill.running, KVBatch)
    monkeypatch.undo()
    skill.start_batching(pad_id=0)
    assert isinstance(skill.running, SlotKV)


def test_a_slot_step_traces_as_one_graph(skill) -> None:
    """What a CUDA graph capture needs, checked on the CPU: the step has no data-dependent
    Python (no ``.item()``, no branch on a tensor), so dynamo traces it whole."""
    if not isinstance(skill.running, SlotKV):
        pytest.skip("growing cache")
    states, _, _ = skill.prefill([PROMPTS[0], PROMPTS[1]], [None, None])
    skill.decode(states, [6, 7])
    batch = skill.running
    with torch.inference_mode():
        eager = batch._step(2).clone()
        traced = torch.compile(lambda: batch._step(2), backend="eager", fullgraph=True)()
    assert torch.allclose(traced, eager)
    for state in states:
        skill.release(state)


@pytest.mark.parametrize("mode", ["plain", "overlapped", "fed", "multistep"])
def test_the_scheduler_gives_each_prompt_its_greedy_tokens_in_a_busy_batch(
        skill, monkeypatch, mode) -> None:
    """Requests of different lengths joining a running batch at different steps, with the
    next step started before the previous one is turned into text (as on CUDA) or not, and
    (fed, the slots on CUDA) taking its tokens from the step before on the device, one
    step or (multistep) three at a time."""
    fed_modes = ("fed", "multistep")
    if mode in fed_modes and not isinstance(skill.running, SlotKV):
        pytest.skip("only the slots take tokens on the device")
    drive.ids_as_text(monkeypatch, skill)
    monkeypatch.setattr(skill, "overlap_steps", mode != "plain")
    monkeypatch.setattr(skill, "feeds_tokens", mode in fed_modes)
    monkeypatch.setattr(skill, "decode_steps", 3 if mode == "multistep" else 1)
    monkeypatch.setattr(scheduler, "MULTI_STEP_ROWS", 1)
    if mode in fed_modes:
        fed = []
        decode = skill.running.decode
        monkeypatch.setattr(skill.running, "decode", lambda states, tokens, given=None: (
            fed.append(given is not None), decode(states, tokens, given))[1])
    lengths = [STEPS - i for i in range(len(PROMPTS))]
    expected = [alone(skill, p)[:n] for p, n in zip(PROMPTS, lengths, strict=True)]
    assert scheduled_tokens(skill, PROMPTS, lengths) == expected
    assert skill.running.rows == []             # every row released: nothing held
    if mode in fed_modes:
        assert sum(fed) >= STEPS - 2            # most steps took their tokens on the device


def test_a_prompt_prefilled_in_parts_continues_as_if_prefilled_whole(skill) -> None:
    assert skill.chunked_prefill
    prompt = PROMPTS[2]                                 # 6 tokens: parts of 2, 3 and 1
    states, whole, _ = skill.prefill([prompt], [None])
    skill.release(states[0])
    partial = skill.prefill_part(None, prompt[:2])
    partial = skill.prefill_part(partial, prompt[2:5])
    assert partial.length == 5
    states, logits, choices = skill.finish_prefill(partial, prompt[5:])
    assert states[0].length == len(prompt) and choices == [None]
    assert torch.allclose(logits, whole, atol=1e-5)
    tokens = greedy(skill, logits, 1)
    for _ in range(STEPS - 1):
        tokens += greedy(skill, skill.decode(states, tokens[-1:]), 1)
    skill.release(states[0])
    assert tokens == alone(skill, prompt)


def test_long_prompts_prefilled_in_parts_in_a_busy_batch_keep_their_greedy_tokens(
        skill, monkeypatch) -> None:
    """A budget of 3 prompt tokens a step: the 4- and 6-token prompts go in parts while the
    others decode, and every request streams what its prompt gives alone."""
    drive.ids_as_text(monkeypatch, skill)
    monkeypatch.setattr(skill, "prefill_budget", 3)
    parts = drive.record_parts(monkeypatch, skill)
    lengths = [STEPS - i for i in range(len(PROMPTS))]
    expected = [alone(skill, p)[:n] for p, n in zip(PROMPTS, lengths, strict=True)]
    assert scheduled_tokens(skill, PROMPTS, lengths, gap_s=0) == expected
    assert parts == [3, 3]      # a first part of each long prompt; their rest finishes them
    assert skill.running.rows == []
