"""Typed settings: one class feeds CLI flags, ``HFSERVE_*`` environment variables and the YAML
config file (priority in that order, then defaults). ``--help`` is generated from it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from hfserve.access_config import GroupConfig, KeyConfig, load_keys_file
from hfserve.model_config import ModelConfig, parse_size
from hfserve.security import hashing
from hfserve.types import Task


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
    min_residency_s: float = Field(
        5.0, ge=0, description="When a load needs the room of models that are busy, the "
        "ones loaded at least this long ago are drained (their requests in flight finish, "
        "new ones wait for their reload) and the load waits for the others: models that "
        "do not fit together take turns of at least this long, rather than one request "
        "each (idle models are evicted at once)")
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
    ray_multiplex_models: int | None = Field(
        None, ge=1, description="Ray mode: most models Ray Serve keeps on one replica of a "
        "multiplexed deployment, the least recently used leaving past that (default: all "
        "its models, so that only the replica's memory_limits decide)")

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
