"""token_ids: the fast tokenizer's Rust object gives the ids transformers' call gives, and
the call itself is used when the Rust object would truncate or pad."""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hfserve.skills.hf_text import token_ids

VOCAB = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "the": 4, "cat": 5, "sat": 6}


def tokenizer() -> PreTrainedTokenizerFast:
    raw = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def test_same_ids_as_the_transformers_call() -> None:
    tok = tokenizer()
    for text in ("the cat sat", "the dog sat", ""):
        assert token_ids(tok, text) == tok(text)["input_ids"]
        assert token_ids(tok, text, special=False) == \
            tok(text, add_special_tokens=False)["input_ids"]
    assert token_ids(tok, "the cat") == [1, 4, 5, 2]


def test_a_truncating_backend_is_not_used_directly() -> None:
    tok = tokenizer()
    tok.backend_tokenizer.enable_truncation(max_length=2)
    assert token_ids(tok, "the cat sat the cat") == tok("the cat sat the cat")["input_ids"]
    assert len(token_ids(tok, "the cat sat the cat")) == 7


def test_token_text_is_what_decode_gives() -> None:
    from hfserve.skills.hf_text import token_text

    tok = tokenizer()
    for ids in ([1, 4, 5, 6, 2], [4, 3, 5], [], [0, 6]):
        for clean in (False, True):
            tok.clean_up_tokenization_spaces = clean
            assert token_text(tok, ids) == tok.decode(ids, skip_special_tokens=True)
    assert token_text(tok, [1, 4, 5, 2]) == "the cat"


def test_token_text_keeps_a_subclass_decode() -> None:
    from hfserve.skills.hf_text import token_text

    class Shouting(PreTrainedTokenizerFast):
        def decode(self, token_ids, **kwargs):
            return super().decode(token_ids, **kwargs).upper()

    tok = tokenizer()
    loud = Shouting(tokenizer_object=tok.backend_tokenizer, unk_token="[UNK]")
    assert token_text(loud, [4, 5]) == "THE CAT"


def minilm_tokenizer():
    from pathlib import Path

    import pytest
    from transformers import AutoTokenizer

    folder = Path(__file__).resolve().parents[2] / ".cache" / "models" / "all-MiniLM-L6-v2"
    if not folder.exists():
        pytest.skip("MiniLM not installed (make models)")
    return AutoTokenizer.from_pretrained(str(folder))


def test_the_fast_decoder_gives_the_wrappers_text(monkeypatch) -> None:
    from hfserve.skills import hf_text

    tok = minilm_tokenizer()
    decode = hf_text.text_decoder(tok)
    cases = []
    for text in ["Hello , world .", "naïve café ☕", "Is n't it ?", " spaced  out [SEP]"]:
        ids = token_ids(tok, text)
        cases += [(ids[:end], hf_text.token_text(tok, ids[:end]))
                  for end in range(1, len(ids) + 1)]

    def wrapper(*args):
        raise AssertionError("the wrapper was called")

    monkeypatch.setattr(hf_text, "token_text", wrapper)    # the Rust decoder alone now
    assert [decode(ids) for ids, _ in cases] == [text for _, text in cases]


def test_a_wrapper_that_changes_the_text_is_kept(monkeypatch) -> None:
    from hfserve.skills.hf_text import text_decoder

    tok = minilm_tokenizer()
    monkeypatch.setattr(type(tok), "_decode", lambda self, ids, **kw: "cleaned")
    assert text_decoder(tok)([1, 2]) == "cleaned"
