"""POST /v1/chat/completions on SmolLM2-135M-Instruct (GGUF), against transformers' own
``generate`` on the same file."""

from __future__ import annotations

import pytest

from .conftest import CHAT, CHAT_SLOTS, SMOL

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
PROMPTS = [
    QUESTION,
    [{"role": "system", "content": "You answer briefly."},
     {"role": "user", "content": "Name three colours."}],
    [{"role": "user", "content": "Write one sentence about the sea."}],
]


@pytest.fixture(scope="module")
def reference():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(SMOL.parent), gguf_file=SMOL.name)
    model = AutoModelForCausalLM.from_pretrained(str(SMOL.parent), gguf_file=SMOL.name,
                                                 dtype=torch.float32).eval()

    def generate(messages, max_new_tokens):
        enc = tok.apply_chat_template(messages, add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[0, enc["input_ids"].shape[1]:]
        return tok.decode(new, skip_special_tokens=True), enc["input_ids"].shape[1]

    return generate


def test_capital_of_france_is_paris(client):
    reply = client.chat.completions.create(model=CHAT, messages=QUESTION, temperature=0,
                                           max_tokens=24)
    choice = reply.choices[0]
    assert "Paris" in choice.message.content
    assert choice.finish_reason == "stop"
    assert reply.object == "chat.completion" and reply.model == CHAT
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


@pytest.mark.parametrize("model", [CHAT, CHAT_SLOTS])
@pytest.mark.parametrize("messages", PROMPTS)
def test_greedy_equals_transformers_generate(client, reference, messages, model):
    expected, prompt_len = reference(messages, 32)
    reply = client.chat.completions.create(model=model, messages=messages, temperature=0,
                                           max_tokens=32)
    assert reply.choices[0].message.content == expected
    assert reply.usage.prompt_tokens == prompt_len


def test_stream_concatenates_to_the_non_stream_answer(client):
    whole = client.chat.completions.create(model=CHAT, messages=PROMPTS[2], temperature=0,
                                           max_tokens=20)
    chunks = list(client.chat.completions.create(
        model=CHAT, messages=PROMPTS[2], temperature=0, max_tokens=20, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.id == chunks[0].id for c in chunks)


def test_max_tokens_gives_length(client):
    reply = client.chat.completions.create(model=CHAT, messages=PROMPTS[2], temperature=0,
                                           max_tokens=3)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_stop_string_cuts_the_text(client):
    full = client.chat.completions.create(model=CHAT, messages=QUESTION, temperature=0,
                                          max_tokens=24).choices[0].message.content
    assert "Paris" in full
    cut = client.chat.completions.create(model=CHAT, messages=QUESTION, temperature=0,
                                         max_tokens=24, stop=["Paris"])
    assert cut.choices[0].message.content == full[: full.index("Paris")]
    assert cut.choices[0].finish_reason == "stop"


def test_logprobs_are_real_and_consistent(client):
    reply = client.chat.completions.create(model=CHAT, messages=QUESTION, temperature=0,
                                           max_tokens=8, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    for tok in content:
        assert tok.logprob <= 0
        assert len(tok.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert tok.top_logprobs[0].token == tok.token
        assert tok.top_logprobs[0].logprob == pytest.approx(tok.logprob)
        assert bytes(tok.bytes).decode() == tok.token


@pytest.mark.parametrize("model", [CHAT, CHAT_SLOTS])
def test_seeded_sampling_is_reproducible_and_n_gives_choices(client, model):
    kwargs = dict(model=model, messages=PROMPTS[2], temperature=1.0, max_tokens=16, seed=7,
                  n=2)
    first = client.chat.completions.create(**kwargs)
    second = client.chat.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == \
        [c.message.content for c in second.choices]
    assert 2 <= first.usage.completion_tokens <= 32
    other_seed = client.chat.completions.create(**{**kwargs, "seed": 8})
    assert [c.message.content for c in other_seed.choices] != \
        [c.message.content for c in first.choices]


def test_list_content_parts_are_accepted(client):
    reply = client.chat.completions.create(
        model=CHAT, temperature=0, max_tokens=24,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is the "},
                                               {"type": "text", "text": "capital of France?"}]}])
    assert "Paris" in reply.choices[0].message.content
