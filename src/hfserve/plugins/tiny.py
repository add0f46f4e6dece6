"""A tiny random copy of a model's architecture (its config shrunk, its tokenizer, processor
and generation settings kept), so a skill written for it can be tested in seconds without
its weights."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

# Config fields that size a model, across the names architectures give them (encoder-only,
# decoder-only, T5's and BART's/Whisper's encoder-decoder names, CLIP's projection).
SHRINK = {"hidden_size": 32, "n_embd": 32, "d_model": 32, "dim": 32,
          "num_hidden_layers": 2, "n_layer": 2, "num_layers": 2, "n_layers": 2,
          "num_decoder_layers": 2, "encoder_layers": 2, "decoder_layers": 2,
          "num_attention_heads": 2, "n_head": 2, "n_heads": 2, "num_key_value_heads": 2,
          "num_heads": 2, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
          "intermediate_size": 64, "n_inner": 64, "hidden_dim": 64, "ffn_dim": 64,
          "d_ff": 64, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
          "head_dim": 16, "d_kv": 16, "projection_dim": 16}
# Tasks whose auto class is the one the built-in skill loads; any other task copies the
# source's own architecture class (Whisper and Wav2Vec2 share a task, not an auto class).
AUTO_CLASSES = {"embedding": "AutoModel", "feature-extraction": "AutoModel",
                "text-classification": "AutoModelForSequenceClassification",
                "text-generation": "AutoModelForCausalLM"}
# What a processor needs beside the tokenizer, and the generation settings Whisper's
# language and task tokens live in: copied as they are.
KEPT_FILES = ("preprocessor_config.json", "processor_config.json", "generation_config.json")


def _shrink(config: Any) -> None:
    # Ints only: a list (Swin's heads per stage) sizes something a single value cannot.
    for name, value in SHRINK.items():
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, value)
    for name in getattr(config, "sub_configs", {}):      # CLIP's text and vision towers
        sub = getattr(config, name, None)
        if sub is not None and hasattr(sub, "to_dict"):
            _shrink(sub)


def _tokenizer(source: str | Path) -> Any | None:
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
    except (OSError, ValueError):   # an image or audio model: no tokenizer to keep
        return None


def _model_class(config: Any, task: str) -> Any:
    import transformers

    if task in AUTO_CLASSES:
        return getattr(transformers, AUTO_CLASSES[task])
    for name in getattr(config, "architectures", None) or []:
        if hasattr(transformers, name):
            return getattr(transformers, name)
    raise ValueError(f"config.json names no transformers architecture to copy for {task!r}")


def tiny_copy(source: str | Path, dest: Path, task: str, seed: int = 0) -> Path:
    """Write a randomly initialised, shrunk ``source`` architecture for ``task`` to ``dest``
    with ``source``'s tokenizer, processor and generation config; returns ``dest``."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(source), trust_remote_code=False)
    _shrink(config)
    tokenizer = _tokenizer(source)
    if tokenizer is not None:
        text = config.get_text_config()
        text.vocab_size = len(tokenizer)
        for owner in {id(config): config, id(text): text}.values():
            for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
                token = getattr(owner, name, None)
                if isinstance(token, int) and token >= len(tokenizer):
                    setattr(owner, name, len(tokenizer) - 1)
    torch.manual_seed(seed)
    cls = _model_class(config, task)
    model = cls.from_config(config) if cls.__name__.startswith("Auto") else cls(config)
    model.eval().save_pretrained(dest)
    if tokenizer is not None:
        tokenizer.save_pretrained(dest)
    for name in KEPT_FILES:
        if (Path(source) / name).is_file():
            shutil.copyfile(Path(source) / name, dest / name)
    return dest
