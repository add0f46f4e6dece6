"""Chat templates: rendered as transformers renders them, within a time and size budget, with
request kwargs limited to the template's own variables (text/chat_template.py)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

from hfserve.errors import InvalidRequest
from hfserve.text.chat_template import render_chat

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if enable_thinking is defined and not enable_thinking %}/no_think\n"
          "{% endif %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]

BOMBS = [
    "{{ 'hello ' * 2000000 }}",
    "{{ 'a'|center(1000000000) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ [1] * 100000000 }}",
    "{{ 2 ** 99999999 }}",
    "{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}"
    "{% endfor %}{{ ns.x|length }}",
    "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(["<unk>", "<|im_start|>", "<|im_end|>", "hi"])}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>",
                                  eos_token="<|im_end|>")
    tok.chat_template = CHATML
    return tok


def test_renders_what_transformers_renders(tokenizer) -> None:
    expected = tokenizer.apply_chat_template(MESSAGES, tokenize=False,
                                             add_generation_prompt=True)
    assert render_chat(tokenizer, MESSAGES, None, None, False) == expected


def test_a_variable_of_the_template_passes(tokenizer) -> None:
    expected = tokenizer.apply_chat_template(MESSAGES, tokenize=False,
                                             add_generation_prompt=True, enable_thinking=False)
    got = render_chat(tokenizer, MESSAGES, None, {"enable_thinking": False}, False)
    assert got == expected and "/no_think" in got


def test_a_name_the_template_never_reads_changes_nothing(tokenizer) -> None:
    assert render_chat(tokenizer, MESSAGES, None, {"unused_flag": 1}, False) == \
        render_chat(tokenizer, MESSAGES, None, None, False)


@pytest.mark.parametrize("key", ["chat_template", "tokenize", "return_dict", "tools",
                                 "add_generation_prompt", "eos_token", "messages",
                                 "continue_final_message", "tokenizer_kwargs"])
def test_server_set_names_are_refused(tokenizer, key: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        render_chat(tokenizer, MESSAGES, None, {key: "{{ 'x' }}"}, False)
    assert info.value.param == f"chat_template_kwargs.{key}"


def test_a_request_template_renders_only_when_the_operator_trusts_them(tokenizer) -> None:
    own = {"chat_template": "{{ messages[-1]['content'] }}!"}
    with pytest.raises(InvalidRequest):
        render_chat(tokenizer, MESSAGES, None, own, False)
    assert render_chat(tokenizer, MESSAGES, None, own, True) == "hi!"


@pytest.mark.parametrize("bomb", BOMBS)
def test_render_bombs_stop_within_the_budget(tokenizer, bomb: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        render_chat(tokenizer, MESSAGES, None, {"chat_template": bomb}, True)
    assert "chat template stopped" in info.value.message


def test_a_bomb_in_the_models_own_template_stops_too(tokenizer) -> None:
    import copy

    bad = copy.copy(tokenizer)
    bad.chat_template = BOMBS[0]
    with pytest.raises(InvalidRequest):
        render_chat(bad, MESSAGES, None, None, False)


def test_sandbox_escapes_render_nothing(tokenizer) -> None:
    payload = "{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}"
    with pytest.raises(InvalidRequest):
        render_chat(tokenizer, MESSAGES, None, {"chat_template": payload}, True)


def test_template_errors_are_the_clients_input_problem(tokenizer) -> None:
    with pytest.raises(InvalidRequest) as info:
        render_chat(tokenizer, MESSAGES, None,
                    {"chat_template": "{{ raise_exception('no system role here') }}"}, True)
    assert "no system role here" in info.value.message
