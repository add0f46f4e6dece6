"""A tiny random copy of a model's architecture (its config shrunk, its tokenizer kept), so
a skill written for it can be tested in seconds without its weights."""

from __future__ import annotations

from pathlib import Path

# Config fields that size a model, across the names architectures give them.
SHRINK = {"hidden_size": 32, "n_embd": 32, "d_model": 32, "dim": 32,
          "num_hidden_layers": 2, "n_layer": 2, "num_layers": 2, "n_layers": 2,
          "num_attention_heads": 2, "n_head": 2, "n_heads": 2, "num_key_value_heads": 2,
          "intermediate_size": 64, "n_inner": 64, "hidden_dim": 64, "ffn_dim": 64,
          "head_dim": 16}
AUTO_CLASSES = {"embedding": "AutoModel", "feature-extraction": "AutoModel",
                "text-classification": "AutoModelForSequenceClassification",
                "text-generation": "AutoModelForCausalLM"}


def tiny_copy(source: str | Path, dest: Path, task: str, seed: int = 0) -> Path:
    """Write a randomly initialised, shrunk ``source`` architecture for ``task`` to ``dest``
    with ``source``'s tokenizer; returns ``dest``."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(source))
    for name, value in SHRINK.items():
        if getattr(config, name, None) is not None:
            setattr(config, name, value)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(source))
    config.vocab_size = len(tokenizer)
    for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
        token = getattr(config, name, None)
        if isinstance(token, int) and token >= len(tokenizer):
            setattr(config, name, len(tokenizer) - 1)
    torch.manual_seed(seed)
    model = getattr(transformers, AUTO_CLASSES[task]).from_config(config)
    model.eval().save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
