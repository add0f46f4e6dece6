"""A Whisper with random weights, built offline and saved as a model folder: its tokenizer
made from a byte-level vocabulary with Whisper's special and timestamp tokens, its feature
extractor, and the generation config ``generate()`` needs for languages, tasks and
timestamps. The integration tests build a tiny one; the speech benchmark (bench/media.py)
builds one of whisper-tiny's sizes.

``regular_tokens`` pads the byte-level vocabulary to that many ordinary tokens (filler
strings no text encodes to, but that decode like any other), so that the vocabulary has a
real checkpoint's size: 50257 with ``<|endoftext|>`` last gives whisper-tiny's 51865 ids,
its task, no-timestamps and timestamp tokens on whisper-tiny's ids (``<|endoftext|>``,
``<|startoftranscript|>`` and the languages start one id lower: transformers lists 100
languages, whisper-tiny 99)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BYTE_TOKENS = 256


def whisper_tokenizer(regular_tokens: int = BYTE_TOKENS) -> Any:
    """Byte-level BPE with no merges: every byte a token (then filler up to
    ``regular_tokens`` - 1, then ``<|endoftext|>``, when that is more than the bytes), then
    Whisper's special tokens in its order, then the 1501 timestamp tokens right after the
    last special one."""
    from transformers import WhisperTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    if regular_tokens > BYTE_TOKENS:
        # "Ġt300": byte-level characters (Ġ is the space), so it decodes to " t300"
        vocab.update({f"\u0120t{i}": i for i in range(BYTE_TOKENS, regular_tokens - 1)})
        vocab["<|endoftext|>"] = regular_tokens - 1
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": [
        "<|startoftranscript|>", *[f"<|{code}|>" for code in LANGUAGES], "<|translate|>",
        "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
        "<|notimestamps|>"]})
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    return tokenizer


def save_random_whisper(folder: Path, *, seed: int, max_new_tokens: int,
                        max_length: int | None = None, regular_tokens: int = BYTE_TOKENS,
                        never_ends: bool = False, **sizes: Any) -> Path:
    """A WhisperForConditionalGeneration of ``sizes`` (WhisperConfig fields; its defaults
    are whisper-tiny's) with random weights seeded by ``seed``, saved to ``folder`` with its
    processor. ``max_new_tokens`` goes into the generation config, where a direct
    ``generate`` takes it; transformers' speech-recognition pipeline puts its own default
    (256) over it, but gives way to a ``max_length`` there (as a real checkpoint's 448),
    which counts the decoder prompt too. ``never_ends`` suppresses ``<|endoftext|>``, so that
    every transcript is as long as those allow."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    tokenizer = whisper_tokenizer(regular_tokens)
    ids = tokenizer.convert_tokens_to_ids
    eot = ids("<|endoftext|>")
    torch.manual_seed(seed)
    config = WhisperConfig(**{"max_target_positions": 448, **sizes,
                              "vocab_size": len(tokenizer), "pad_token_id": eot,
                              "bos_token_id": eot, "eos_token_id": eot,
                              "decoder_start_token_id": ids("<|startoftranscript|>")})
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        decoder_start_token_id=config.decoder_start_token_id, max_new_tokens=max_new_tokens,
        **({"max_length": max_length} if max_length else {}),
        lang_to_id={f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"), prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=True, max_initial_timestamp_index=50, begin_suppress_tokens=[eot],
        suppress_tokens=[eot] if never_ends else [], alignment_heads=[[0, 0], [0, 1]])
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(), tokenizer).save_pretrained(folder)
    return folder
