"""Who may use the server and how requests are routed among models: API keys with scopes,
models and limits (``KeyConfig``, a keys file), and model groups (``GroupConfig``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from hfserve.security import hashing
from hfserve.types import Task


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
