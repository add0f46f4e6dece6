"""Sequence classifiers for benchmarks, built from the MiniLM folder: all-MiniLM-L6-v2's real
encoder weights under a seeded random head, as ``BertForSequenceClassification``, saved once
under .cache/bench-models with MiniLM's tokenizer. Their scores mean nothing; what they cost
per pair or text is that of a real MiniLM cross-encoder or classifier."""

from __future__ import annotations

import gc
import json
from pathlib import Path

from bench.server import EMBED_DIR, ROOT

BENCH_MODELS = ROOT / ".cache" / "bench-models"
RERANK = "minilm-reranker"
CLASSIFY = "minilm-classifier"
# Served name -> the head's labels. One label makes a cross-encoder, for hfserve (a reranker)
# and for Infinity (its rerank engine) alike.
HEADS = {RERANK: {0: "LABEL_0"}, CLASSIFY: {0: "negative", 1: "neutral", 2: "positive"}}


def build_classifier(name: str) -> Path:
    """MiniLM's encoder under a seeded random head of ``HEADS[name]``'s labels, saved with
    MiniLM's tokenizer (once); the weights left at random are recorded beside it."""
    folder = BENCH_MODELS / name
    if (folder / ".complete").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    labels = HEADS[name]
    print(f"  writing {folder} from {EMBED_DIR.name} (random head, first run only)",
          flush=True)
    torch.manual_seed(0)
    model, loading = BertForSequenceClassification.from_pretrained(
        str(EMBED_DIR), num_labels=len(labels), id2label=labels,
        label2id={v: k for k, v in labels.items()}, output_loading_info=True)
    model.eval().save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(EMBED_DIR)).save_pretrained(folder)
    (folder / "random-weights.json").write_text(json.dumps(
        {"source": str(EMBED_DIR), "initialised_at_random": sorted(loading["missing_keys"])},
        indent=2))
    (folder / ".complete").write_text("ok\n")
    del model
    gc.collect()
    return folder


def random_keys(folder: Path) -> list[str]:
    return json.loads((folder / "random-weights.json").read_text())["initialised_at_random"]
