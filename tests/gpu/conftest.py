"""GPU tests: real models on CUDA through the in-process app. Skipped without a CUDA device."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / ".cache" / "models"
MINILM = MODELS / "all-MiniLM-L6-v2"
SMOL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "tests/gpu/" in str(item.fspath):
            item.add_marker(skip)
