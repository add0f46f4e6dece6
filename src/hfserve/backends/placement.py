"""Where and how a model runs, as the runtime decides it and every backend and skill reads it:
the device, dtype, threads and backend, and the model's settings that backends and skills
read, typed and built once from its ``ModelConfig`` (``BackendOptions.of``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from hfserve.model_config import ModelConfig


def _default(name: str):
    """A setting's default, defined once: the ``ModelConfig`` field's (None where a backend
    chooses by device, documented on the field)."""
    return ModelConfig.model_fields[name].default


@dataclass(frozen=True)
class BackendOptions:
    """What backends and skills read of a model's settings beyond device and dtype. Where the
    default is None the skill decides by device, as each field's description in
    ``ModelConfig`` says."""

    cache_dir: Path | None = None          # exports (OpenVINO IR, ONNX, GGUF as HF folders)
    device_kind: str = "cpu"               # the hardware layer's kind: cpu, cuda, openvino...
    ov_device: str = "CPU"                 # OpenVINO's own device name on that kind
    int8: bool = _default("int8")
    streams: int = 1                       # ModelConfig.streams None means one
    max_concurrent: int = _default("max_concurrent")
    prefix_caching: bool = _default("prefix_caching")
    cuda_graphs: bool | None = _default("cuda_graphs")
    prefill_graphs: bool | None = _default("prefill_graphs")
    decode_steps: int | None = _default("decode_steps")
    kv_cache_memory: int | None = _default("kv_cache_memory")
    prefill_wait_steps: int | None = _default("prefill_wait_steps")
    max_prefill_tokens: int | None = _default("max_prefill_tokens")
    adapters: dict[str, str] = field(default_factory=dict)   # LoRA name -> resolved folder

    @classmethod
    def of(cls, mc: ModelConfig, **placed) -> BackendOptions:
        """The options of model config ``mc``, with what placement decided (``cache_dir``,
        ``device_kind``, ``ov_device``)."""
        from_config = {f.name: getattr(mc, f.name) for f in fields(cls)
                       if f.name in ModelConfig.model_fields}
        from_config["streams"] = mc.streams or 1
        return cls(**from_config, **placed)


@dataclass
class Placement:
    """Where and how a skill runs: the runtime fills this from the hardware layer."""

    device: str = "cpu"          # torch device string
    dtype: str = "float32"
    threads: int | None = None
    backend: str = "torch"
    options: BackendOptions = field(default_factory=BackendOptions)
