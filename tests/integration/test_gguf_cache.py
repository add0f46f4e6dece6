"""What a GGUF file is turned into once and then loaded from the cache is the same thing: the
tokenizer (ids, text, chat template, end-of-sequence ids) and the dequantized weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfserve.backends.placement import BackendOptions, Placement
from hfserve.backends.torch_backend import load_torch_model
from hfserve.model_config import ModelConfig
from hfserve.registry.spec import build_spec
from hfserve.text.codec import HFTextCodec

from .conftest import SMOL

MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say «bonjour», 漢字 and 🤗 , please ."}]


def codec(cache_dir: Path | None) -> tuple[HFTextCodec, frozenset[int]]:
    c = HFTextCodec()
    eos = c.load_tokenizer(build_spec(ModelConfig(source=str(SMOL))), cache_dir=cache_dir)
    return c, eos


def test_the_cached_tokenizer_is_the_files(tmp_path: Path) -> None:
    if not SMOL.exists():
        pytest.skip("SmolLM2 GGUF not installed (make models)")
    direct, direct_eos = codec(None)
    first, first_eos = codec(tmp_path)               # builds and saves the cache
    saved = list((tmp_path / "tokenizer").iterdir())
    assert len(saved) == 1 and (saved[0] / ".complete").is_file()
    cached, cached_eos = codec(tmp_path)             # loads from it
    assert direct_eos == first_eos == cached_eos
    chat = direct.encode_chat(MESSAGES, {})
    assert cached.encode_chat(MESSAGES, {}) == chat
    text = "Hello , world . Ünïcödé 漢字 🤗 <|im_end|> the end"
    ids = direct.encode_text(text)
    assert cached.encode_text(text) == ids
    for some in (ids, chat, ids[:7], [1, 2, 3, 50, 999, 49151]):
        assert cached.decode_tokens(some) == direct.decode_tokens(some)
    assert [cached.token_text(t) for t in chat] == [direct.token_text(t) for t in chat]
    assert cached.tokenizer.chat_template == direct.tokenizer.chat_template
    for attribute in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id"):
        assert getattr(cached.tokenizer, attribute) == getattr(direct.tokenizer, attribute)
    assert len(cached.tokenizer) == len(direct.tokenizer)


def test_the_cached_weights_are_the_files(tmp_path: Path, monkeypatch) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    if not SMOL.exists():
        pytest.skip("SmolLM2 GGUF not installed (make models)")
    spec = build_spec(ModelConfig(source=str(SMOL)))
    placement = Placement(device="cpu", dtype="float32", options=BackendOptions(cache_dir=tmp_path))
    first = load_torch_model(AutoModelForCausalLM, spec, placement)
    saved = list((tmp_path / "torch").iterdir())
    assert len(saved) == 1 and (saved[0] / ".complete").is_file()
    sources = []
    real = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, path, *args, **kwargs):
        sources.append((path, kwargs.get("gguf_file")))
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    again = load_torch_model(AutoModelForCausalLM, spec, placement)
    assert sources == [(str(saved[0]), None)]          # read from the cache, not the file
    ours, theirs = first.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert again.generation_config.eos_token_id == first.generation_config.eos_token_id
