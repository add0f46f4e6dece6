"""The grammar mask on a tiny vocabulary: constrained rows of a batch sample only what the
grammar allows, end when it is complete, and leave unconstrained rows alone."""

from __future__ import annotations

import json

import pytest

from hfserve.engines.torch_lm import sampling
from hfserve.errors import InvalidRequest
from hfserve.text import grammar
from hfserve.types import Constraint, Pick, SamplingParams

VOCAB = ["<eos>", "{", "}", '"', "a", "b", ":", "1", "2", ",", " ", "x", "yes", "no"]
EOS = 0


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="x"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    # the grammar engine reads token bytes the way a sentencepiece-style decoder gives them
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


@pytest.fixture(scope="module")
def grammars(tokenizer):
    return grammar.Grammars(tokenizer, frozenset({EOS}))


def _step(logits, picks):
    return [c.token_id for c in sampling.sample(logits, picks)]


def test_a_guided_row_samples_only_allowed_tokens_and_others_are_untouched(grammars):
    import torch

    guide = grammars.guide(Constraint("regex", "(yes|no)"))
    logits = torch.zeros(2, len(VOCAB))
    logits[:, VOCAB.index("x")] = 10.0           # what both rows want most
    logits[:, VOCAB.index("no")] = 5.0
    greedy = SamplingParams(temperature=0)
    picks = [Pick(0, greedy, None, [], guide), Pick(1, greedy, None, [])]
    assert _step(logits.clone(), picks) == [VOCAB.index("no"), VOCAB.index("x")]
    # the grammar is complete: only the end is left
    assert _step(logits.clone(), picks[:1]) == [EOS]


def test_json_schema_output_follows_the_schema_token_by_token(grammars):
    import torch

    schema = {"type": "object", "properties": {"a": {"type": "integer"}},
              "required": ["a"], "additionalProperties": False}
    guide = grammars.guide(Constraint("json_schema", json.dumps(schema)))
    generator = torch.Generator().manual_seed(0)
    params = SamplingParams(temperature=1.0)
    out = []
    for _ in range(20):
        token = _step(torch.randn(1, len(VOCAB), generator=generator),
                      [Pick(0, params, generator, [], guide)])[0]
        if token == EOS:
            break
        out.append(VOCAB[token])
    assert isinstance(json.loads("".join(out))["a"], int)
    assert set(json.loads("".join(out))) == {"a"}


def test_matchers_of_one_schema_are_copies_of_one_parse(grammars):
    c = Constraint("regex", "(yes|no)")
    first, second = grammars.guide(c), grammars.guide(c)
    first.advance(VOCAB.index("yes"))
    assert first.matcher.is_accepting() and not second.matcher.is_accepting()
    assert c.key in grammars._matchers           # cached by digest


def test_a_failed_guide_allows_only_the_end(grammars):
    import torch

    guide = grammars.guide(Constraint("regex", "(yes|no)"))
    guide.advance(VOCAB.index("x"))              # not allowed: the matcher fails
    assert guide.failed
    logits = torch.zeros(1, len(VOCAB))
    assert _step(logits, [Pick(0, SamplingParams(temperature=0), None, [], guide)]) == [EOS]


def test_logits_wider_than_the_vocabulary_never_pick_the_padding(grammars):
    import torch

    guide = grammars.guide(Constraint("regex", "(yes|no)"))
    logits = torch.zeros(1, len(VOCAB) + 50)
    logits[0, -1] = 100.0
    token = _step(logits, [Pick(0, SamplingParams(temperature=0), None, [], guide)])[0]
    assert VOCAB[token] in ("yes", "no")


@pytest.mark.parametrize("constraint, words", [
    (Constraint("json_schema", '{"type": "nope"}'), "nope"),
    (Constraint("json_schema", "[1, 2]"), "object"),
    (Constraint("regex", "a(b"), "unclosed"),
])
def test_a_constraint_the_engine_cannot_compile_is_a_400(constraint, words):
    with pytest.raises(InvalidRequest) as caught:
        grammar.check(constraint)
    assert caught.value.param == "response_format"
    assert words in str(caught.value)
    assert "|" not in str(caught.value)            # no listing of the grammar


def test_fixed_text_around_a_schema(grammars):
    guide = grammars.guide(Constraint("regex", "(yes|no)", prefix="{", suffix="}"))
    for token in ("{", "no", "}"):
        assert guide.matcher.consume_token(VOCAB.index(token))
    assert guide.matcher.is_accepting()


def test_a_gguf_byte_level_vocabulary_reaches_the_engine_as_bytes():
    """transformers rebuilds SmolLM2's GGUF tokenizer with a sentencepiece-style decoder;
    read by that, "Ġ" and "Ċ" would not be a space and a newline."""
    from pathlib import Path

    models = Path(__file__).resolve().parents[2] / ".cache" / "models"
    gguf = models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.exists():
        pytest.skip("SmolLM2 GGUF not downloaded (make models)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(models), gguf_file=gguf.name)
    guide = grammar.Grammars(tok, frozenset({2})).guide(
        Constraint("json_schema", '{"type": "object"}', prefix="<tool_call>\n",
                   suffix="\n</tool_call>"))
    # the compact JSON the grammar writes, with the space inside the string
    compact = '<tool_call>\n{"city":"New York"}\n</tool_call>'
    assert all(guide.matcher.consume_token(t)
               for t in tok.encode(compact, add_special_tokens=False))
    assert guide.matcher.is_accepting()
