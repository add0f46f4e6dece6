"""Bodies of the admin routes: load overrides, a model registered at run time and a LoRA
adapter added to a model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(None, description="Load on this device instead (cpu, cuda:1, ...)")
    backend: str | None = Field(None, description="Load with this backend instead")


class RegisterRequest(BaseModel):
    """``id`` and ``source`` (a local path under the model roots), then any ModelConfig
    field (device, backend, dtype, pinned, idle_ttl_s, ...)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200, description="The name clients will use")
    source: str = Field(min_length=1, description="Local folder or file under a model root")


class AdapterRequest(BaseModel):
    """A LoRA adapter to serve on a generation model: its name and its folder."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="The name requests use, as "
                      "model NAME or MODEL:NAME")
    path: str = Field(min_length=1, description="Local folder saved by peft's "
                      "save_pretrained, under a model root")
