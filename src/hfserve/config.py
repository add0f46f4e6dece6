"""Typed settings: one class feeds CLI flags, ``HFSERVE_*`` environment variables and the YAML
config file (priority in that order, then defaults). ``--help`` is generated from it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from hfserve.security import hashing
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


class GroupConfig(BaseModel):
    """Several models served under one name for one task: each request goes to one of them,
    chosen by Thompson sampling over a measured reward, or by fixed ``weights`` (A/B)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(min_length=1, max_length=128, pattern=r"^[\w.@:/-]+$",
                      description="Name clients use for the group")
    task: Task = Field(description="The task every model of the group does (the one "
                       "`model: auto` means on that task's routes)")
    models: list[str] = Field(min_length=1, description="Served names of the group's models")
    weights: dict[str, float] | None = Field(
        None, description="A fixed split, model -> weight (A/B); unset: Thompson sampling")
    prior_alpha: float = Field(1.0, gt=0, description="Beta prior: successes before any")
    prior_beta: float = Field(1.0, gt=0, description="Beta prior: failures before any")
    latency_target_ms: float | None = Field(
        None, gt=0, description="A success slower than this earns 1 - latency_weight")
    latency_weight: float = Field(0.5, ge=0, le=1, description="What missing the latency "
                                  "target costs a success's reward (1: as much as a failure)")
    feedback_weight: float = Field(1.0, ge=0, description="How far one POST /v1/feedback "
                                   "moves the posterior, against one measured request")

    @model_validator(mode="after")
    def _weights_name_models(self) -> GroupConfig:
        if self.weights is not None:
            if set(self.weights) != set(self.models):
                raise ValueError(f"group {self.name!r}: weights must name every model of "
                                 "the group, and only those")
            if any(w < 0 for w in self.weights.values()) or not sum(self.weights.values()):
                raise ValueError(f"group {self.name!r}: weights must be >= 0, not all 0")
        return self


Scope = Literal["inference", "admin"]


class KeyConfig(BaseModel):
    """One API key: who it is (``id``, logged; the key never is), what it may do (``scopes``,
    ``models``) and its limits. The key is given plain (``key``, hashed at load and dropped)
    or as the hash ``hfserve hash-key`` prints (``hash``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128, pattern=r"^[\w.@:-]+$")
    key: str | None = Field(None, repr=False, exclude=True)
    hash: str | None = Field(None, repr=False)
    scopes: list[Scope] = Field(default_factory=lambda: ["inference"])
    models: list[str] | None = Field(None, description="Models this key may use (all if unset)")
    rpm: int | None = Field(None, ge=1, description="Requests per minute for this key")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute for this key")

    @model_validator(mode="after")
    def _hash_plain_key(self) -> KeyConfig:
        if (self.key is None) == (self.hash is None):
            raise ValueError(f"key {self.id!r}: give exactly one of `key` or `hash`")
        if self.key is not None:
            problem = hashing.weakness(self.key)
            if problem:
                raise ValueError(f"key {self.id!r}: {problem}")
            self.hash, self.key = hashing.hash_key(self.key), None
        else:
            hashing.parse_hash(self.hash or "")
        return self


_KEY_LIST = TypeAdapter(list[KeyConfig])


def load_keys_file(path: Path) -> list[KeyConfig]:
    """The key entries of a YAML or JSON file: a list, or a mapping with a ``keys`` list."""
    data = yaml.safe_load(Path(path).read_text())   # JSON is YAML too
    if isinstance(data, dict):
        data = data.get("keys")
    if not isinstance(data, list):
        raise ValueError(f"keys_file {path}: expected a list of key entries")
    return _KEY_LIST.validate_python(data)


class Settings(BaseSettings):
    """Server settings. Every field is a ``--flag`` and an ``HFSERVE_<FIELD>`` variable."""

    model_config = SettingsConfigDict(env_prefix="HFSERVE_", env_nested_delimiter="__",
                                      extra="forbid", protected_namespaces=())

    config: Path | None = Field(None, description="YAML config file (models and settings)")
    host: str = Field("127.0.0.1", description="Address to bind")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind")
    models: Annotated[list[ModelConfig], NoDecode] = Field(
        default_factory=list, description="Models to serve")
    groups: list[GroupConfig] = Field(
        default_factory=list, description="Model groups: name, task, models, and weights "
        "for a fixed split or the bandit's priors and reward (see docs/groups.md)")
    model_dirs: list[Path] = Field(default_factory=list,
                                   description="Folders whose model subfolders are served")
    hf_cache: bool = Field(False, description="Also serve every model in the HuggingFace cache")
    skills_dir: Path | None = Field(
        None, description="Folder of skill files (hf_<name>.py in the seed ecosystem's format, "
        "or a hfserve Skill class): a model named by a file's hf_<model_type> or by its "
        "`skill` setting is served by that file. Plugins are code: only this folder is read")
    skills: dict[Task, str | list[str]] = Field(
        default_factory=dict, description="Skill classes to serve a task with, tried before "
        "the built-in ones: task -> 'package.module:Class' (or a list). Packages may also offer "
        "skills in the 'hfserve.skills' entry-point group (name: the task)")
    preload: Annotated[str | list[str], NoDecode] = Field(
        "all", description="Models loaded at start-up: all, none, or a comma-separated list "
        "of ids; the others load on their first request")
    load_timeout_s: float = Field(
        300.0, gt=0, description="How long a request waits for its model to load before a "
        "503 with Retry-After")
    skip_unservable_models: bool = Field(
        False, description="Start even when a configured model cannot be served (it is "
        "listed as failed); off: such a model fails the start")
    model_roots: list[Path] | None = Field(
        None, description="Folders under which POST /v1/models may register local models "
        "(default: the model_dirs)")
    memory_reserve: int = Field(
        512 * 2**20, ge=0, description="Memory kept free on a device without a "
        "memory_limits entry (its budget is what it reports free less this)")
    idle_ttl_s: float | None = Field(
        None, gt=0, description="Unload a model after this many seconds without a request "
        "(default: never; a model's own idle_ttl_s wins)")
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive model failures (errors of the model, never a "
        "client's) that open a model's circuit breaker")
    breaker_open_s: float = Field(
        30.0, gt=0, description="How long an open breaker fails requests fast before one "
        "probe request is let through")
    threads: int | None = Field(
        None, ge=1, description="Default intra-op threads per model (default: every CPU the "
        "process may use, its affinity mask capped by its cgroup quota)")
    device: str = Field("auto", description="Default device for models that name none")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest request body")
    cache_dir: Path = Field(Path.home() / ".cache" / "hfserve",
                            description="Exported models (OpenVINO IR, ONNX), GGUF models "
                            "dequantized once and their tokenizers, and profiles")
    memory_limits: dict[str, int] = Field(
        default_factory=dict,
        description="Memory each device may use, e.g. {cuda:0: 8GiB, cpu: 16GiB}")
    request_timeout_s: float = Field(600.0, gt=0, description="Default per-request deadline")
    api_key: str | None = Field(
        None, repr=False, description="One API key with every scope (the same as a `keys` "
        "entry with id api_key); folded into `keys` at load")
    keys: list[KeyConfig] = Field(
        default_factory=list, description="API keys: id, key or hash, scopes (inference, "
        "admin), models, rpm, tpm (config file or HFSERVE_KEYS as JSON)")
    keys_file: Path | None = Field(None, description="YAML or JSON file with more `keys` entries")
    public_docs_and_metrics: bool = Field(
        False, description="Serve /metrics, /docs, /redoc and /openapi.json without a key "
        "when keys are set")
    admin_routes: bool = Field(
        True, description="Serve the routes that change which models are served (admin "
        "scope); off: they answer 404")
    ui: bool = Field(
        True, description="Serve the web dashboard and playground at /ui (public static "
        "files; the page asks for a key when keys are set); off: /ui answers 404")
    mcp: bool = Field(True, description="Serve MCP (streamable HTTP) at /mcp: each model "
                      "and task a tool (inference scope)")
    rate_limit_rpm: int | None = Field(
        None, ge=1, description="Requests per minute of each key (and of all clients without "
        "a key together) whose entry sets no rpm")
    rate_limit_tpm: int | None = Field(
        None, ge=1, description="Tokens per minute of each key whose entry sets no tpm")
    rate_limit_store: str = Field(
        "memory", description="Where rate limit buckets live: memory (this process) or "
        "redis://host:port/db (shared by every server using it)")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins browsers may call from (CORS; none by "
        "default, * for any)")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host names a POST/PUT/PATCH/DELETE may be sent to, "
        "and origins it may come from, besides localhost, IP addresses and the bound host "
        "(*.example.com for subdomains, * for any)")
    log_level: str = Field("info", description="debug, info, warning, error")
    access_log: bool = Field(False, description="Log every HTTP request")
    max_request_items: int = Field(
        2048, ge=1, description="Most inputs one encoder request (embeddings) may carry; "
        "more is a 400 (also capped by the model's max_queue)")
    max_request_sequences: int = Field(
        256, ge=1, description="Most sequences one generation request may ask for (prompts "
        "x n); more is a 400 (prompts also capped by the model's max_queue)")
    trust_request_chat_template: bool = Field(
        False, description="Let requests replace the model's chat template "
        "(chat_template_kwargs.chat_template); off: only the model's own template renders")
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM/SIGINT, how long requests in flight may run on; "
        "streams still running then end with an error event and [DONE]")
    response_cache_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="Bytes of encoder results (embeddings, scores, "
        "labels) kept per input for identical requests, least recently used dropped first; "
        "0 turns the cache off")
    response_cache_ttl_s: float = Field(
        600.0, gt=0, description="Seconds a cached encoder result is served")
    ray: bool = Field(
        False, description="Serve on Ray Serve: one deployment per model, behind an ingress "
        "serving this same HTTP API (needs the ray extra; see docs/ray.md)")
    ray_address: str | None = Field(
        None, description="Ray mode: the cluster to join (auto, or ray://host:10001); unset: a "
        "local Ray instance bound to 127.0.0.1, dashboard off")
    ray_min_replicas: int | None = Field(
        None, ge=0, description="Ray mode: with ray_max_replicas, autoscale each model "
        "deployment from this many replicas (default 1)")
    ray_max_replicas: int | None = Field(
        None, ge=1, description="Ray mode: autoscale each model deployment up to this many "
        "replicas (unset: the model's ray_replicas, fixed)")
    ray_target_ongoing_requests: float = Field(
        2.0, gt=0, description="Ray mode, autoscaling: requests in flight per replica the "
        "autoscaler aims at")

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_strings(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.lstrip().startswith("[") else \
                [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return [{"source": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("preload", mode="before")
    @classmethod
    def _preload(cls, value: Any) -> Any:
        if isinstance(value, bool):           # --preload / --no-preload
            return "all" if value else "none"
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            value = value[0]
        if isinstance(value, str) and value.strip().lower() not in ("all", "none"):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("memory_reserve", "response_cache_bytes", mode="before")
    @classmethod
    def _reserve(cls, value: Any) -> Any:
        return parse_size(value)

    def preloads(self, name: str, aliases: list[str]) -> bool:
        """Whether the model named ``name`` (or one of its aliases) loads at start-up."""
        if isinstance(self.preload, list):
            return bool({name, *aliases} & set(self.preload))
        return self.preload == "all"

    def roots(self) -> list[Path]:
        """Where models may be registered at run time."""
        return list(self.model_roots if self.model_roots is not None else self.model_dirs)

    @field_validator("memory_limits", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, dict):
            return {k: parse_size(v) for k, v in value.items()}
        return value

    @field_validator("api_key")
    @classmethod
    def _strong_api_key(cls, value: str | None) -> str | None:
        problem = None if value is None else hashing.weakness(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """A list, a JSON list, or comma-separated names (a flag, an environment variable)."""
        if isinstance(value, str):
            value = json.loads(value) if value.lstrip().startswith("[") else \
                [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("rate_limit_store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("rate_limit_store: memory or a redis:// URL")
        return value

    @model_validator(mode="after")
    def _gather_keys(self) -> Settings:
        """One list of hashed keys: ``keys``, the file's, and the old single ``api_key``."""
        keys = list(self.keys)
        if self.keys_file is not None:
            keys += load_keys_file(self.keys_file)
        if self.api_key is not None:
            keys.append(KeyConfig(id="api_key", key=self.api_key, scopes=["inference", "admin"]))
            self.api_key = None
        ids = [k.id for k in keys]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"key ids must be unique: {', '.join(twice)}")
        self.keys, self.keys_file = keys, None
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        path = init_kwargs.get("config") or os.environ.get("HFSERVE_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"config file not found: {path}")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(path)))
        return tuple(sources)

    def model_configs(self) -> list[ModelConfig]:
        """Configured models with server-wide defaults filled in."""
        out = []
        for mc in self.models:
            updates: dict[str, Any] = {}
            if mc.device == "auto" and self.device != "auto":
                updates["device"] = self.device
            if mc.threads is None and self.threads is not None:
                updates["threads"] = self.threads
            out.append(mc.model_copy(update=updates))
        return out
