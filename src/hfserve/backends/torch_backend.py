"""Loading a transformers model onto a torch device with the chosen dtype."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hfserve.backends.export_cache import cached_or_built, export_dir
from hfserve.backends.placement import Placement
from hfserve.backends.pretrained import model_kwargs
from hfserve.types import ModelSpec


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16,
            "bfloat16": torch.bfloat16}[name]


def load_torch_model(auto_class: Any, spec: ModelSpec, placement: Placement):
    """``auto_class.from_pretrained`` on the spec's files, moved to the placement, eval mode."""

    if placement.device.startswith("cuda"):
        shape_free_attention()
    kwargs = {"dtype": torch_dtype(placement.dtype), **model_kwargs(spec)}
    cache_dir = placement.options.cache_dir
    if spec.gguf_file and cache_dir:
        model = _dequantized(auto_class, spec, placement.dtype, Path(cache_dir), kwargs)
    else:
        model = auto_class.from_pretrained(str(spec.path), gguf_file=spec.gguf_file, **kwargs)
    return model.to(placement.device).eval()


def _dequantized(auto_class: Any, spec: ModelSpec, dtype: str, cache_dir: Path,
                 kwargs: dict[str, Any]) -> Any:
    """A GGUF model, dequantized once. transformers parses the file and dequantizes every
    tensor on each load (10.3 s for SmolLM2-135M on a 2-core machine, most of it reading
    the file's metadata); the first load saves the model as it is served (this dtype) as a
    safetensors folder in the cache, and later loads read that (0.1 s, the same weights
    bit for bit). It takes the disk space of the served model, as an OpenVINO export does."""
    import transformers

    return cached_or_built(
        export_dir(cache_dir, spec, "torch", dtype=dtype, transformers=transformers.__version__),
        read=lambda folder: auto_class.from_pretrained(
            str(folder), **{**kwargs, **model_kwargs(spec, folder)}),
        build=lambda: auto_class.from_pretrained(str(spec.path), gguf_file=spec.gguf_file,
                                                 **kwargs),
        write=_save_dequantized)


def _save_dequantized(model: Any, folder: Path) -> None:
    """The model's config and weights as a plain transformers folder. Not
    ``save_pretrained``: transformers 5.17 marks a model loaded from GGUF as quantized and
    refuses to save it, though its weights are plain tensors by then."""
    import copy

    from safetensors.torch import save_model

    folder.mkdir(parents=True)
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(str(folder))
    model.generation_config.save_pretrained(str(folder))
    save_model(model, str(folder / "model.safetensors"))


def shape_free_attention() -> None:
    """Keep scaled-dot-product attention off cuDNN. torch 2.11 sends attention with a
    padding mask to cuDNN first, and cuDNN builds an execution plan (hundreds of ms) for
    every new (batch, length) shape; a server's shapes change at nearly every step, so the
    memory-efficient and flash kernels, which need no plan, serve it better. The switch is
    process-wide: generation models run in a process of their own."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)
