"""The tokenizer written for a GGUF model (SmolLM2) loads with ``AutoTokenizer`` in any client
and cuts text exactly as the served one does, with the GGUF file's own vocabulary, special
tokens and chat template."""

from __future__ import annotations

import pytest

from .conftest import SMOL

TEXTS = ["def f():\n    return 1\n\n\nx", "Hi!\n\n  Two  spaces , a tab\there.",
         "Ünïcödé 漢字 🤗 <|im_end|> end\n", "<|im_start|>user\nhello<|im_end|>\n"]


def _field(reader, name):
    field = reader.fields[name]
    values = [bytes(field.parts[i]).decode("utf-8") if field.types[-1].name == "STRING"
              else field.parts[i].tolist()[0] for i in field.data]
    return values if len(values) > 1 or name.endswith("tokens") else values[0]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from hfserve.model_config import ModelConfig
    from hfserve.registry.spec import build_spec
    from hfserve.text.codec import load_hf_tokenizer

    cache = tmp_path_factory.mktemp("tokenizer-cache")
    spec = build_spec(ModelConfig(name="smol", source=str(SMOL)))
    served = load_hf_tokenizer(spec, cache)
    folders = [p.parent for p in cache.rglob("tokenizer.json")]
    assert len(folders) == 1
    return served, folders[0]


def test_auto_tokenizer_on_the_written_folder_cuts_text_as_served(written):
    from transformers import AutoTokenizer

    served, folder = written
    client = AutoTokenizer.from_pretrained(str(folder))
    assert "CodeLlama" not in type(client).__name__
    for text in TEXTS:
        assert client(text)["input_ids"] == served(text)["input_ids"], text
        assert client.decode(client(text, add_special_tokens=False)["input_ids"]) == text
    assert client.chat_template == served.chat_template


def test_the_vocabulary_special_tokens_and_template_are_the_gguf_files(written):
    import gguf
    from transformers import AutoTokenizer

    client = AutoTokenizer.from_pretrained(str(written[1]))
    reader = gguf.GGUFReader(str(SMOL))
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(client) == len(tokens)
    assert client.convert_ids_to_tokens(list(range(len(tokens)))) == tokens
    assert client.eos_token_id == _field(reader, "tokenizer.ggml.eos_token_id")
    assert client.bos_token_id == _field(reader, "tokenizer.ggml.bos_token_id")
    assert client.chat_template == _field(reader, "tokenizer.chat_template")
    for special in ("<|im_start|>", "<|im_end|>"):
        ids = client(special, add_special_tokens=False)["input_ids"]
        assert ids == [tokens.index(special)]
