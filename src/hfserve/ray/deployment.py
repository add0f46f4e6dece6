"""A model deployment's replica: hfserve's own engine serving one model, its methods the
engine's per-model calls, and Ray Serve's health check its readiness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from hfserve.config import Settings
from hfserve.errors import ModelUnavailable
from hfserve.model_config import ModelConfig
from hfserve.ray.wire import StreamStart
from hfserve.runtime.engine import Engine  # the composition root of a replica
from hfserve.runtime.events import GenerationInput, RunResult
from hfserve.types import Task, TokenSpan

LOAD_POLL_S = 0.2


def replica_settings(settings: Settings, model: ModelConfig) -> Settings:
    """The settings of one model's replica: the server's, serving only that model."""
    return settings.model_copy(update={"models": [model], "groups": [], "ray": False})


class ModelReplica:
    """Ray Serve constructs it once per replica; the constructor returns when the model is
    loaded (when it preloads), so the replica takes traffic only then."""

    async def __init__(self, settings: Settings, model: ModelConfig) -> None:
        self.name = model.served_name
        self.requests = 0        # calls doing work, as ``status`` reports them
        self.engine = Engine(replica_settings(settings, model))
        await self.engine.start()
        if settings.preloads(self.name, model.aliases):
            while not self.engine.ready()[0]:
                self._check_health()
                await asyncio.sleep(LOAD_POLL_S)

    # --- work ---------------------------------------------------------------------------
    async def run(self, model: str, task: Task, items: list[Any], options: dict[str, Any],
                  priority: str, timeout: float | None, cache: bool) -> RunResult:
        self.requests += 1
        return await self.engine.run(model, task, items, options, priority=priority,
                                     timeout=timeout, cache=cache)

    async def stream(self, model: str, request: GenerationInput) -> AsyncIterator[Any]:
        """A generation: its ``StreamStart``, then its events. The ingress cancelling the
        stream (its client left) closes the handle here, which aborts the generation."""
        self.requests += 1
        handle = await self.engine.stream(model, request)
        async with handle:
            yield StreamStart(handle.request_id, handle.model, handle.prompt_ids,
                              handle.created, handle.tool_parser)
            async for event in handle:
                yield event

    async def detokenize(self, model: str, token_ids: list[int]) -> str:
        return await self.engine.detokenize(model, token_ids)

    async def tokenize(self, model: str, texts: list[str],
                       add_special_tokens: bool) -> list[list[TokenSpan]]:
        return await self.engine.tokenize(model, texts, add_special_tokens)

    async def decode(self, model: str, sequences: list[list[int]],
                     skip_special_tokens: bool) -> list[str]:
        return await self.engine.decode(model, sequences, skip_special_tokens)

    # --- introspection ------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What the ingress shows of this model between calls: its model objects, readiness,
        breakers and failures; and which replica answers, with the work it took."""
        ok, states = self.engine.ready()
        return {"models": self.engine.models(), "ready": ok, "states": states,
                "breakers": self.engine.breakers(), "broken": self.engine.broken(),
                "replica": serve.get_replica_context().replica_id.unique_id,
                "requests": self.requests}

    def hardware(self) -> dict[str, Any]:
        return self.engine.hardware()

    def check_health(self) -> None:
        """Ray Serve's health check: raising makes it replace this replica."""
        self._check_health()

    def _check_health(self) -> None:
        broken = self.engine.broken()
        _, states = self.engine.ready()
        failed = sorted(n for n, state in states.items() if state == "failed")
        if broken or failed:
            raise ModelUnavailable(f"model {self.name!r} failed: "
                                   f"{'; '.join(broken.values()) or ', '.join(failed)}")

    async def __del__(self) -> None:
        await self.engine.close()
