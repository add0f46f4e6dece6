"""Decoder families beyond Llama through the torch generation skill, on tiny random models
built here (MiniLM's tokenizer): mixture-of-experts (Mixtral, Qwen2-MoE) and state-space
(Mamba, whose cache holds a recurrent state, not keys and values). Greedy text equals
transformers' ``generate`` for each prompt alone, streamed, and inside a busy continuous
batch of other prompts."""

from __future__ import annotations

import asyncio

import openai
import pytest

from .conftest import MINILM, serve_folders

PROMPTS = ["hello there friend", "a much longer prompt about the weather in spring and rain",
           "one", "the cat sat on the mat and looked around the room slowly"]
MAX_TOKENS = 10


def _build(name: str, folder):
    import torch
    from transformers import (
        AutoTokenizer,
        MambaConfig,
        MambaForCausalLM,
        MixtralConfig,
        MixtralForCausalLM,
        Qwen2MoeConfig,
        Qwen2MoeForCausalLM,
    )

    tok = AutoTokenizer.from_pretrained(str(MINILM))
    vocab = tok.vocab_size
    # An end token these random models never pick, so every answer runs to its limit.
    common = {"vocab_size": vocab, "hidden_size": 32, "num_hidden_layers": 2,
              "eos_token_id": vocab - 1, "pad_token_id": tok.pad_token_id}
    attention = {"num_attention_heads": 4, "num_key_value_heads": 2,
                 "max_position_embeddings": 256, "intermediate_size": 64}
    torch.manual_seed(0)
    model = {
        "mixtral": lambda: MixtralForCausalLM(MixtralConfig(
            **common, **attention, num_local_experts=4, num_experts_per_tok=2)),
        "qwen-moe": lambda: Qwen2MoeForCausalLM(Qwen2MoeConfig(
            **common, **attention, num_experts=4, num_experts_per_tok=2,
            moe_intermediate_size=32, shared_expert_intermediate_size=32)),
        "mamba": lambda: MambaForCausalLM(MambaConfig(**common, state_size=8)),
    }[name]()
    model.eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoders")
    return {name: _build(name, root / name) for name in ("mixtral", "qwen-moe", "mamba")}


@pytest.fixture(scope="module")
def base(models, tmp_path_factory):
    yield from serve_folders(models, tmp_path_factory.mktemp("decoders-server"),
                             backend="torch", max_concurrent=8, own_process=False)


def greedy(folder, prompt: str) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=MAX_TOKENS, do_sample=False)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


@pytest.mark.parametrize("name", ["mixtral", "qwen-moe", "mamba"])
def test_greedy_equals_generate_alone_streamed_and_in_a_busy_batch(base, models, name):
    wants = [greedy(models[name], p) for p in PROMPTS]
    assert len(set(wants)) > 1              # the prompts lead the model apart
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
    alone = [client.completions.create(model=name, prompt=p, max_tokens=MAX_TOKENS,
                                       temperature=0).choices[0].text for p in PROMPTS]
    assert alone == wants
    streamed = "".join(chunk.choices[0].text for chunk in client.completions.create(
        model=name, prompt=PROMPTS[1], max_tokens=MAX_TOKENS, temperature=0, stream=True))
    assert streamed == wants[1]

    async def busy():
        aclient = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0)
        # Sampled neighbours, longer than the greedy ones, keep the batch full meanwhile.
        noise = [aclient.completions.create(model=name, prompt=p, max_tokens=3 * MAX_TOKENS,
                                            temperature=1.0, seed=i)
                 for i, p in enumerate(PROMPTS)]
        greedy_ones = [aclient.completions.create(model=name, prompt=p, max_tokens=MAX_TOKENS,
                                                  temperature=0) for p in PROMPTS]
        answers = await asyncio.gather(*noise, *greedy_ones)
        return [a.choices[0].text for a in answers[len(noise):]]

    assert asyncio.run(busy()) == wants
