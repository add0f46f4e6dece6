"""The two models of the media benchmark, built here with random weights (HF Hub is out of
reach; speed does not depend on the weights) at the sizes of real checkpoints, and saved
once under .cache/bench-models/:

- ``clip-b32-random``: ``openai/clip-vit-base-patch32``'s architecture (``CLIPConfig()``'s
  defaults are that model's sizes: ViT-B/32 at 224 px, a 12-layer text tower over 49408
  ids, 512-d projections) with its image processor settings, and a CLIP tokenizer of the
  same 49408 ids (byte-level, no merges: filler tokens stand in for the merged ones);
- ``whisper-tiny-random``: ``openai/whisper-tiny``'s architecture (``WhisperConfig()``'s
  defaults: d_model 384, 4 + 4 layers, 6 heads, 51865 ids) with its 80-bin feature
  extractor, built by the same helper as the test suite's tiny Whisper.

Both folders are written in the layout transformers 4.x reads too (vocab.json and
merges.txt beside tokenizer.json, ``CLIPImageProcessor`` named in preprocessor_config.json),
since Infinity's environment has transformers 4.57."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.server import ROOT

BENCH_MODELS = ROOT / ".cache" / "bench-models"
CLIP_DIR = BENCH_MODELS / "clip-b32-random"
WHISPER_DIR = BENCH_MODELS / "whisper-tiny-random"
CLIP_NAME = "clip-vit-base-patch32-random"
WHISPER_NAME = "whisper-tiny-random"

CLIP_VOCAB = 49408          # <|startoftext|> 49406, <|endoftext|> 49407, as in the checkpoint
WHISPER_REGULAR = 50257     # ordinary ids of whisper-tiny, <|endoftext|> the last of them
# the decoder prompt of a transcription with its language given and no timestamps:
# <|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|>
WHISPER_PROMPT = 4

# openai/clip-vit-base-patch32's preprocessor_config.json, in today's field names
CLIP_IMAGE_PROCESSOR = {
    "image_processor_type": "CLIPImageProcessor", "processor_class": "CLIPProcessor",
    "do_resize": True, "size": {"shortest_edge": 224}, "resample": 3,
    "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True,
}


def _clip_tokenizer(folder: Path) -> None:
    """CLIP's byte-level BPE over 49408 ids, no merges: each byte a token, alone or ending
    a word (``</w>``), filler up to the special tokens, which keep the checkpoint's ids."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    tokens += [f"t{i}</w>" for i in range(len(tokens), CLIP_VOCAB - 2)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    # the files a transformers 4.x CLIPTokenizer is built from, and settings in the names
    # both versions read (the checkpoint's)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77,
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True,
        "errors": "replace", "add_prefix_space": False}, indent=2))


def clip_folder() -> Path:
    """The CLIP folder, built on first use."""
    if (CLIP_DIR / ".complete").is_file():
        return CLIP_DIR
    import torch
    from transformers import CLIPConfig, CLIPModel

    print(f"  writing {CLIP_DIR}: CLIP ViT-B/32's architecture, random weights (first run "
          "only)", flush=True)
    CLIP_DIR.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig()).eval().save_pretrained(CLIP_DIR)
    _clip_tokenizer(CLIP_DIR)
    (CLIP_DIR / "preprocessor_config.json").write_text(json.dumps(CLIP_IMAGE_PROCESSOR,
                                                                  indent=2))
    (CLIP_DIR / ".complete").write_text("ok\n")
    return CLIP_DIR


def whisper_folder(max_new_tokens: int) -> Path:
    """The Whisper folder, built on first use; its generation config set to decode exactly
    ``max_new_tokens`` tokens after the decoder prompt (``<|endoftext|>`` suppressed: random
    weights would otherwise stop anywhere). transformers' speech-recognition pipeline, which
    hfserve's Whisper runs in, reads the length from ``max_length`` (its own default
    ``max_new_tokens`` wins over the folder's), so both are set."""
    if not (WHISPER_DIR / ".complete").is_file():
        tests = str(ROOT / "tests")
        if tests not in sys.path:
            sys.path.insert(0, tests)
        from random_whisper import save_random_whisper

        print(f"  writing {WHISPER_DIR}: whisper-tiny's architecture, random weights (first "
              "run only)", flush=True)
        save_random_whisper(WHISPER_DIR, seed=0, max_new_tokens=max_new_tokens,
                            regular_tokens=WHISPER_REGULAR, never_ends=True)
        (WHISPER_DIR / ".complete").write_text("ok\n")
    path = WHISPER_DIR / "generation_config.json"
    config = json.loads(path.read_text())
    wanted = {"max_new_tokens": max_new_tokens,
              "max_length": WHISPER_PROMPT + max_new_tokens}
    if any(config.get(k) != v for k, v in wanted.items()):
        path.write_text(json.dumps({**config, **wanted}, indent=2))
    return WHISPER_DIR
