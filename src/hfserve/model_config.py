"""One model's settings (``ModelConfig``): its source, placement, batching, generation and
limits, as the config file's ``models:`` entries and ``--model-option NAME.KEY=VALUE`` give
them; and sizes such as ``8GiB`` read as bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hfserve.types import Task

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: int | float | str) -> int:
    """Bytes from 1073741824, "1GiB", "512 MiB" or "1.5GB"."""
    if isinstance(value, int | float):
        return int(value)
    text = value.strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):]
    if unit not in _UNITS or not number:
        raise ValueError(f"not a size: {value!r} (use e.g. 8GiB or 512MiB)")
    return int(float(number) * _UNITS[unit])


def check_adapter_name(name: str) -> str:
    """A LoRA adapter's name: what follows ``MODEL:`` in a request, so without a colon."""
    if not name or ":" in name or "/" in name or name != name.strip():
        raise ValueError(f"adapter name {name!r}: use a non-empty name without ':', '/' "
                         "or surrounding spaces")
    return name


class ModelConfig(BaseModel):
    """One served model, as listed in the config file or given on the command line."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    source: str = Field(description="Local folder, .gguf file, or HuggingFace cache id")
    name: str | None = Field(None, description="Name clients use (default: derived from source)")
    aliases: list[str] = Field(default_factory=list, description="Other names for this model")
    task: Task | None = Field(None, description="Override the task read from the model config")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps, openvino, ...")
    dtype: str | None = Field(
        None, description="float32, bfloat16, float16 (default: the checkpoint's own half "
        "precision where the device computes it natively, bfloat16 for a GGUF file; else "
        "float32 on CPUs and bf16 or fp16 on GPUs). float32 keeps greedy output the same "
        "whatever batch a request shares")
    backend: str = Field("auto", description="auto, torch, openvino, onnxruntime")
    int8: bool = Field(False, description="int8 weight compression where the backend has it")
    gguf_file: str | None = Field(None, description="GGUF file inside the source folder")
    threads: int | None = Field(
        None, ge=1, description="Intra-op threads for this model (default: every CPU the "
        "process may use, its affinity mask capped by its cgroup quota)")
    streams: int | None = Field(
        None, ge=1, description="Encoder batches computed at once, each on an inference stream "
        "of its own that shares the model's threads (OpenVINO; default: 1)")
    max_batch_size: int = Field(32, ge=1, description="Most items in one encoder batch")
    max_batch_tokens: int = Field(16384, ge=1, description="Token budget of one encoder batch")
    max_wait_ms: float = Field(
        0.0, ge=0, description="How long a part batch may wait for more items while the model "
        "is idle (0: it runs at once; items that arrive while a batch runs gather into the "
        "next one)")
    max_queue: int = Field(1024, ge=1, description="Queued requests before 429")
    max_concurrent: int = Field(8, ge=1, description="Generation sequences decoded together")
    max_tokens_default: int = Field(512, ge=1, description="max_tokens when a request names none")
    cuda_graphs: bool | None = Field(
        None, description="Decode in fixed KV-cache slots replayed as CUDA graphs (torch "
        "generation; default: on for CUDA, with a fall back to eager steps if capture fails)")
    prefill_graphs: bool | None = Field(
        None, description="Prefill new prompts at fixed shapes replayed as CUDA graphs, where "
        "decode uses the fixed slots (torch generation; default: on where the decode steps are "
        "captured; prompts asking for prompt logprobs and prompts in parts stay eager)")
    decode_steps: int | None = Field(
        None, ge=1, description="With 64 or more sequences running, decode steps queued back "
        "to back before their tokens are turned into text, together: the host's work per "
        "step is spread over that many tokens, and each stream gets them in one chunk "
        "(torch generation on the CUDA-graph slots; default: 4 there, 1 elsewhere)")
    kv_cache_memory: int | None = Field(
        None, description="Memory for the fixed KV-cache slots of CUDA-graph decode, e.g. "
        "8GiB (torch generation; default: 90% of the device memory free once the weights are "
        "loaded, less 1 GiB for captured prefill). When max_concurrent sequences of the "
        "model's whole context do not fit, the context served shrinks to what does. On "
        "OpenVINO generation: the pipeline's KV cache, in whole GiB rounded up (default 1 GiB)")
    prefill_wait_steps: int | None = Field(
        None, ge=0, description="Decode steps a new request may wait while others stream, so "
        "that newcomers are prefilled together (torch generation; default: 16 on a GPU, where "
        "a prefill costs about as much whatever its size, 0 on the CPU)")
    max_prefill_tokens: int | None = Field(
        None, ge=1, description="Prompt tokens prefilled between two decode steps while others "
        "stream; a longer prompt is prefilled in parts (generation; default: 512 on the CPU and "
        "8192 on a GPU, the same with OpenVINO on its CPU and 2048 on its other devices)")
    prefix_caching: bool = Field(
        True, description="Reuse the KV cache of prompt prefixes already seen (a shared system "
        "prompt is computed once), where the backend has it")
    adapters: dict[str, str] = Field(
        default_factory=dict, description="LoRA adapters served on this model, name -> local "
        "folder saved by peft (save_pretrained), under the model roots where those are "
        "configured. A request selects one as model \"NAME\" or \"MODEL:NAME\"; rows of "
        "different adapters share a batch (torch generation only: other backends refuse "
        "adapter requests with a 400; set backend: torch)")
    tool_parser: Literal["hermes", "llama3", "mistral", "json"] | None = Field(
        None, description="Tool-call format the model writes: hermes, llama3, mistral or "
        "json (default: chosen from the chat template and architecture)")
    rpm: int | None = Field(
        None, ge=1, description="Requests per minute this model takes from all clients together "
        "(token bucket; more is a 429 with Retry-After)")
    tpm: int | None = Field(
        None, ge=1, description="Prompt + generated tokens per minute this model serves to all "
        "clients together (charged once known; a client in debt waits)")
    trust_remote_code: bool = Field(
        False, description="Run the Python code a model folder ships (config.json or "
        "tokenizer_config.json with auto_map); off: such a model is refused")
    allow_pickle: bool = Field(
        False, description="Load weights stored only as pickle files (.bin, .pt, .pth, "
        ".ckpt), through transformers' weights-only loader; off: such a model is refused "
        "(a folder with .safetensors files always loads those)")
    own_process: bool | None = Field(
        None, description="Run the model and its generation loop in a process of its own "
        "(default: yes for generation on a GPU or NPU, no on the CPU)")
    max_image_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Largest encoded image one input may carry "
        "(base64 data or fetched URL body), e.g. 20MiB")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Most pixels (width x height) of one decoded image; a "
        "larger header is refused before its pixels are decoded")
    image_url_hosts: list[str] = Field(
        default_factory=list, description="Hosts whose http(s) image URLs the server fetches "
        "(default: none, only data URLs and base64 are taken; local files never are)")
    max_images: int = Field(
        10, ge=1, description="Most images one /v1/images/generations request may ask for "
        "(n; OpenAI's own limit is 10)")
    max_image_size: int = Field(
        1024 * 1024, ge=64, description="Most pixels (width x height) of one generated image")
    max_image_steps: int = Field(
        100, ge=1, description="Most denoising steps (num_inference_steps) of one generated "
        "image")
    image_steps_default: int | None = Field(
        None, ge=1, description="Denoising steps when a request names none (default: the "
        "pipeline's own, 50 for Stable Diffusion)")
    max_audio_bytes: int = Field(
        25 * 1024 * 1024, ge=1, description="Largest audio file one request may upload "
        "(OpenAI's limit, 25MiB); the server's max_body_bytes caps it too")
    max_audio_seconds: float = Field(
        3600.0, gt=0, description="Longest audio one request may carry; a longer header is "
        "refused before decoding, and decoding stops at the limit whatever the header says")
    replicas: int = Field(
        1, ge=1, description="Copies of this model served under its one name, each request "
        "going to the least loaded (default: one per entry of devices, else 1). CPU replicas "
        "that set no threads share the CPUs between them")
    devices: list[str] | None = Field(
        None, min_length=1, description="Devices of the replicas, e.g. [cuda:0, cuda:1] "
        "(used in turn when there are more replicas than devices)")
    replica_of: str | None = Field(
        None, description="Set by the server on each replica: the name of its model")
    tasks: list[Task] = Field(
        default_factory=list, description="More tasks served under this model's name, each by "
        "a skill of its own, e.g. [fill-mask] for a BERT served for embeddings. Each such "
        "skill loads its own copy of the weights (listed as NAME#TASK, evicted on its own)")
    companion_of: str | None = Field(
        None, description="Set by the server on the entry serving one of a model's extra "
        "tasks: the name of its model")
    ray_replicas: int = Field(
        1, ge=1, description="Ray mode: replicas of this model's deployment, each a process "
        "running the model (the initial count when autoscaling)")
    ray_num_cpus: float | None = Field(
        None, ge=0, description="Ray mode: CPUs each replica of this model reserves "
        "(default: its threads, else 1)")
    ray_num_gpus: float | None = Field(
        None, ge=0, description="Ray mode: GPUs each replica of this model reserves "
        "(default: 1 when its device is cuda, else 0)")
    ray_min_replicas: int | None = Field(
        None, ge=0, description="Ray mode: with a max, autoscale this model's deployment "
        "from this many replicas (default: the server's ray_min_replicas, else 1)")
    ray_max_replicas: int | None = Field(
        None, ge=1, description="Ray mode: autoscale this model's deployment up to this many "
        "replicas (default: the server's ray_max_replicas; unset there too: ray_replicas, "
        "fixed)")
    ray_target_ongoing_requests: float | None = Field(
        None, gt=0, description="Ray mode, autoscaling: requests in flight per replica the "
        "autoscaler aims at (default: the server's)")
    ray_multiplex: str | None = Field(
        None, pattern=r"^[\w.-]+$", description="Ray mode: serve this model from the shared "
        "multiplexed deployment of this name, with the other models that name it: each "
        "replica loads them on demand and keeps what its memory_limits hold")
    pinned: bool = Field(False, description="Never evict this model to make room for another")
    skill: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Serve this model with the "
        "skill file skills_dir/SKILL.py (default: skills_dir/hf_<model_type>.py where it "
        "exists); only a name, never a path: plugins are code the operator put there")
    idle_ttl_s: float | None = Field(
        None, gt=0, description="Unload this model after this many seconds without a request "
        "(default: the server's idle_ttl_s)")
    discovered: bool = Field(
        False, description="Found by --model-dirs or --hf-cache rather than configured: a "
        "model no skill serves is listed as unsupported instead of failing the start")

    @field_validator("adapters")
    @classmethod
    def _adapter_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            check_adapter_name(name)
        return value

    @field_validator("kv_cache_memory", "max_image_bytes", "max_audio_bytes", mode="before")
    @classmethod
    def _kv_size(cls, value: Any) -> Any:
        return None if value is None else parse_size(value)

    @property
    def served_name(self) -> str:
        if self.name:
            return self.name
        src = self.source.rstrip("/")
        base = Path(src).name if (os.sep in src or src.endswith(".gguf")) and Path(src).exists() \
            else src
        return base.removesuffix(".gguf")


def apply_model_options(models: list[ModelConfig], options: list[str]) -> list[ModelConfig]:
    """``NAME.KEY=VALUE`` (``*.KEY=VALUE`` for every model) set on the named models: the
    command line's reach into each model's settings. VALUE is read as YAML, as the config
    file would hold it (``torch``, ``2``, ``true``, ``[a, b]``)."""
    out = list(models)
    for option in options:
        target, _, value = option.partition("=")
        name, _, key = target.rpartition(".")
        if not (name and key and _):
            raise ValueError(f"--model-option {option!r}: expected NAME.KEY=VALUE")
        if key not in ModelConfig.model_fields or key == "source":
            raise ValueError(f"--model-option {option!r}: models have no setting {key!r}")
        hits = [i for i, mc in enumerate(out) if name in ("*", mc.served_name)]
        if not hits:
            names = ", ".join(mc.served_name for mc in out) or "none"
            raise ValueError(f"--model-option {option!r}: no model {name!r} (models: {names})")
        for i in hits:
            update = {**out[i].model_dump(exclude_unset=True), key: yaml.safe_load(value)}
            out[i] = ModelConfig.model_validate(update)
    return out
