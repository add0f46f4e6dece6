"""How many bytes a model takes on its device: estimated before a load (weight files scaled
to the dtype it loads in, plus headroom for activations and the KV cache), measured after
(the process's resident memory, or CUDA's allocated memory, before and after)."""

from __future__ import annotations

import os
from pathlib import Path

from hfserve.registry.pipeline import component_folders
from hfserve.types import ModelSpec, Task

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")
HEADROOM = 0.2            # activations and buffers, as a share of the weights
FIXED_HEADROOM = 16 * 2**20
KV_TOKENS = 2048          # tokens of KV cache per sequence counted before a load
GGUF_FACTOR = 4           # GGUF weights are dequantized to 16-bit floats (from ~4 bits)


def weight_bytes(spec: ModelSpec) -> int:
    """Bytes of the weight files as stored (in every component of a diffusers pipeline)."""
    path = Path(spec.path)
    if spec.gguf_file:
        gguf = path / spec.gguf_file
        return gguf.stat().st_size * GGUF_FACTOR if gguf.is_file() else 0
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for folder in component_folders(path) for f in folder.iterdir()
               if f.is_file() and f.suffix in WEIGHT_SUFFIXES)


def kv_bytes(spec: ModelSpec, sequences: int, dtype_bytes: int) -> int:
    """A generative model's KV cache for ``sequences`` of up to KV_TOKENS tokens."""
    if spec.task != Task.TEXT_GENERATION:
        return 0
    config = spec.config
    text = config.get("text_config", config)
    layers, hidden = text.get("num_hidden_layers"), text.get("hidden_size")
    if not isinstance(layers, int) or not isinstance(hidden, int):
        return 0
    heads = text.get("num_attention_heads") or 1
    kv_heads = text.get("num_key_value_heads") or heads
    width = hidden * kv_heads // heads
    tokens = min(spec.max_context or KV_TOKENS, KV_TOKENS)
    return 2 * layers * width * tokens * sequences * dtype_bytes


def estimate(spec: ModelSpec, dtype: str | None = None, sequences: int = 1) -> int:
    """Bytes the model is expected to take once loaded in ``dtype`` (default: as stored)."""
    stored = DTYPE_BYTES.get(spec.checkpoint_dtype or "", 4)
    target = DTYPE_BYTES.get(dtype or "", stored)
    weights = weight_bytes(spec)
    if weights == 0 and spec.parameters:
        weights = spec.parameters * stored
    if not spec.gguf_file:
        weights = weights * target // stored
    return int(weights * (1 + HEADROOM)) + FIXED_HEADROOM + kv_bytes(spec, sequences, target)


def process_bytes() -> int:
    """This process's resident memory."""
    try:
        import psutil

        return int(psutil.Process(os.getpid()).memory_info().rss)
    except Exception:  # psutil missing or refused: Linux's own figure
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0


def cuda_bytes(device: str) -> int | None:
    """Memory torch holds on a CUDA device; None where CUDA is not in use."""
    import sys

    torch = sys.modules.get("torch")      # never imported here: only where it is in use
    if torch is None or not device.startswith("cuda") or not torch.cuda.is_initialized():
        return None
    return int(torch.cuda.memory_reserved(torch.device(device)))


def empty_device_cache(device: str | None) -> None:
    """Hand memory torch's caching allocator keeps back to the device, after an unload."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and device and device.startswith("cuda") and \
            torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def plausible(measured: int, estimated: int) -> bool:
    """Whether a measured delta is the model's own: on the CPU it also counts one-time
    imports (torch's first load is hundreds of MiB) and other threads' allocations."""
    return estimated // 4 <= measured <= estimated * 4
