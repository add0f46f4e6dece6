"""token_ids: the fast tokenizer's Rust object gives the ids transformers' call gives, and
the call itself is used when the Rust object would truncate or pad."""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hfserve.text.codec import token_ids

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


def test_a_truncating_backend_is_never_mutated() -> None:
    # transformers' call turns the shared backend's truncation off for the call; threads
    # doing that at once fail with "Already borrowed". The ids come from a plain copy.
    tok = tokenizer()
    tok.backend_tokenizer.enable_truncation(max_length=2)
    before = dict(tok.backend_tokenizer.truncation)
    assert token_ids(tok, "the cat sat the cat") == [1, 4, 5, 6, 4, 5, 2]
    assert tok.backend_tokenizer.truncation == before


def test_token_text_is_what_decode_gives() -> None:
    from hfserve.text.codec import token_text

    tok = tokenizer()
    for ids in ([1, 4, 5, 6, 2], [4, 3, 5], [], [0, 6]):
        for clean in (False, True):
            tok.clean_up_tokenization_spaces = clean
            assert token_text(tok, ids) == tok.decode(ids, skip_special_tokens=True)
    assert token_text(tok, [1, 4, 5, 2]) == "the cat"


def test_token_text_keeps_a_subclass_decode() -> None:
    from hfserve.text.codec import token_text

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
    from hfserve.text import codec as hf_text

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
    from hfserve.text.codec import text_decoder

    tok = minilm_tokenizer()
    monkeypatch.setattr(type(tok), "_decode", lambda self, ids, **kw: "cleaned")
    assert text_decoder(tok)([1, 2]) == "cleaned"


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE (as GPT-2, Llama 3, SmolLM2) trained here on a few lines, so that
    multi-byte characters span several tokens."""
    from tokenizers import decoders, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(["the cat sat on the mat", "the dog sat", "a café, naïve"],
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel
                                                .alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>")


def test_the_incremental_decoder_streams_the_same_text_as_windowed_decoding() -> None:
    from hfserve.runtime.generation.sequence import Sequence
    from hfserve.text.codec import HFTextCodec, _rust_decodes_alike
    from hfserve.types import SamplingParams, TokenChoice

    codec = HFTextCodec()
    codec.tokenizer = byte_level_tokenizer()
    backend = _rust_decodes_alike(codec.tokenizer)
    assert backend is not None
    codec._decode = lambda ids: backend.decode(ids, skip_special_tokens=True)
    codec._stream_backend = backend
    text = "the cat sat on a mat, naïve café 漢字 🤗 <eos> the end"
    ids = token_ids(codec.tokenizer, text, special=False)
    assert len(ids) > len(text.split())           # characters span several tokens

    def run(stream, upto: int) -> tuple[list[str], str]:
        seq = Sequence(index=0, prompt_len=1, params=SamplingParams(max_tokens=1000),
                       decode=codec.decode_tokens, eos_token_ids=frozenset(), stream=stream)
        deltas = [seq.append(TokenChoice(token_id=t)) for t in ids[:upto]]
        end = seq.finish("length")
        return [d.text for d in deltas if d is not None] + [end.text], seq.text

    for upto in range(1, len(ids) + 1):          # each cut, mid-character ones included
        streamed = run(codec.text_stream(), upto)
        assert streamed == run(None, upto)
        assert streamed[1] == codec.decode_tokens(ids[:upto])
    assert run(codec.text_stream(), len(ids))[1] == \
        "the cat sat on a mat, naïve café 漢字 🤗  the end"
