"""POST /v1/completions: raw prompts, echo and prompt logprobs as evaluation harnesses use them."""

from __future__ import annotations

import math

import pytest

from .conftest import CHAT, SMOL

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def prompt_logprobs():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(SMOL.parent), gguf_file=SMOL.name)
    model = AutoModelForCausalLM.from_pretrained(str(SMOL.parent), gguf_file=SMOL.name,
                                                 dtype=torch.float32).eval()
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = model(ids).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return [float(logprobs[i, ids[0, i + 1]]) for i in range(ids.shape[1] - 1)]


def test_echo_scores_the_prompt_like_transformers(loose_client, prompt_logprobs):
    got = loose_client.completions.create(model=CHAT, prompt=PROMPT, max_tokens=0, echo=True,
                                    logprobs=1)
    choice = got.choices[0]
    assert choice.text == PROMPT
    lp = choice.logprobs
    # The tokenizer may add a BOS token: it is scored too, as the first (unscored) token.
    assert "".join(lp.tokens).endswith(PROMPT)
    assert lp.token_logprobs[0] is None
    assert lp.token_logprobs[1:] == pytest.approx(prompt_logprobs, abs=1e-3)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    assert got.usage.completion_tokens == 0
    assert got.usage.prompt_tokens == len(lp.tokens)


def test_echo_with_generation_appends_to_the_prompt(loose_client):
    got = loose_client.completions.create(model=CHAT, prompt=PROMPT, max_tokens=4, echo=True,
                                    temperature=0, logprobs=2)
    choice = got.choices[0]
    assert choice.text.startswith(PROMPT) and len(choice.text) > len(PROMPT)
    assert len(choice.logprobs.tokens) == got.usage.prompt_tokens + 4
    assert all(math.isfinite(x) for x in choice.logprobs.token_logprobs[1:])


def test_greedy_completion_and_stream_agree(client, loose_client):
    whole = client.completions.create(model=CHAT, prompt=PROMPT, max_tokens=12, temperature=0)
    # Stream chunks carry finish_reason null until the last, which the SDK's type forbids.
    parts = list(loose_client.completions.create(model=CHAT, prompt=PROMPT, max_tokens=12,
                                           temperature=0, stream=True,
                                           stream_options={"include_usage": True}))
    assert "".join(p.choices[0].text for p in parts if p.choices) == whole.choices[0].text
    assert parts[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert whole.object == "text_completion"


def test_several_prompts_give_indexed_choices(client):
    got = client.completions.create(model=CHAT, prompt=[PROMPT, "One, two,"], max_tokens=3,
                                    temperature=0)
    assert [c.index for c in got.choices] == [0, 1]
    alone = client.completions.create(model=CHAT, prompt="One, two,", max_tokens=3,
                                      temperature=0)
    assert got.choices[1].text == alone.choices[0].text
