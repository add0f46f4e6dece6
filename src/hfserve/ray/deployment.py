"""A model deployment's replica: hfserve's own engine serving one model (``ModelReplica``)
or the models of a multiplexed deployment (``MultiplexedReplica``), its methods the
engine's per-model calls, and Ray Serve's health check its readiness."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from ray import serve

from hfserve.config import Settings
from hfserve.errors import ModelNotFound, ModelUnavailable
from hfserve.model_config import ModelConfig
from hfserve.ray.wire import StreamStart
from hfserve.runtime.engine import Engine  # the composition root of a replica
from hfserve.runtime.events import GenerationInput, RunResult
from hfserve.types import Task, TokenSpan

log = logging.getLogger(__name__)

LOAD_POLL_S = 0.2


def replica_settings(settings: Settings, model: ModelConfig) -> Settings:
    """The settings of one model's replica: the server's, serving only that model."""
    return settings.model_copy(update={"models": [model], "groups": [], "ray": False})


def multiplexed_settings(settings: Settings, models: list[ModelConfig]) -> Settings:
    """The settings of a multiplexed deployment's replica: the server's, serving its models,
    none loaded before it is asked for (what one replica holds is what its requests ask
    for, within its ``memory_limits``)."""
    return settings.model_copy(update={"models": models, "groups": [], "ray": False,
                                       "preload": "none"})


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
                self._check_model()
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
        """What the ingress shows of these models between calls: their model objects,
        readiness, breakers and failures; and which replica answers, with the work it took."""
        ok, states = self.engine.ready()
        return {"models": self.engine.models(), "ready": ok, "states": states,
                "breakers": self.engine.breakers(), "broken": self.engine.broken(),
                "replica": serve.get_replica_context().replica_id.unique_id,
                "requests": self.requests}

    def hardware(self) -> dict[str, Any]:
        return self.engine.hardware()

    def check_health(self) -> None:
        """Ray Serve's health check: raising (three times in a row) makes it replace this
        replica. Unhealthy when the engine is not ready (its model failed, its breaker is
        open or its worker died) or the model failed for good."""
        self._check_model()
        ok, states = self.engine.ready()
        if not ok:
            raise ModelUnavailable(f"model {self.name!r} is not ready "
                                   f"({states.get(self.name, 'unknown')})")

    def _check_model(self) -> None:
        broken = self.engine.broken()
        _, states = self.engine.ready()
        failed = sorted(n for n, state in states.items() if state == "failed")
        if broken or failed:
            raise ModelUnavailable(f"model {self.name!r} failed: "
                                   f"{'; '.join(broken.values()) or ', '.join(failed)}")

    async def __del__(self) -> None:
        await self.engine.close()


class Tenant:
    """Ray Serve's record that this replica serves one model of its multiplexed deployment
    (what its router sends that model's requests by). The engine loads the model on the
    request's own call, as any on-demand load, and evicts it by bytes; Ray Serve dropping
    the record (past ``ray_multiplex_models``) unloads it."""

    def __init__(self, name: str, unload: Callable[[str], None]) -> None:
        self.name = name
        self._unload: Callable[[str], None] | None = unload

    def __del__(self) -> None:
        # Ray Serve calls this when it drops the record; Python again when it collects it.
        unload, self._unload = self._unload, None
        if unload is not None:
            unload(self.name)


class MultiplexedReplica(ModelReplica):
    """A replica of a multiplexed deployment: one engine for all of its models, each call
    naming its model with Ray Serve's multiplexed model id (the served name)."""

    async def __init__(self, settings: Settings, models: list[ModelConfig],
                   max_models: int | None) -> None:
        self.name = ", ".join(m.served_name for m in models)
        self.members = {m.served_name for m in models}
        self.requests = 0
        self.engine = Engine(multiplexed_settings(settings, models))
        await self.engine.start()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._drain_s = settings.drain_timeout_s

        async def tenant(model_id: str) -> Tenant:
            return Tenant(model_id, self._unload)

        # Wired here, not as a decorated method, for the count to be the configuration's.
        self._tenant = serve.multiplexed(
            max_num_models_per_replica=max_models or len(models))(tenant)

    async def _admit(self) -> None:
        """Note the call's model with Ray Serve's multiplexing (its router then prefers this
        replica for that model)."""
        model = serve.get_multiplexed_model_id()
        if model not in self.members:
            raise ModelNotFound.named(model or "(none)")
        await self._tenant(model)

    def _unload(self, name: str) -> None:
        """Unload ``name`` from the engine (Ray Serve calls this on a thread of its own and
        waits; on the event loop's own thread, at collection, it is only scheduled)."""
        try:
            done = asyncio.run_coroutine_threadsafe(self.engine.unload_model(name), self._loop)
        except RuntimeError:           # the loop is closed: the engine went with it
            return
        if threading.get_ident() != self._loop_thread:
            try:
                done.result(timeout=self._drain_s + 30)
            except Exception as exc:    # an unload that fails leaves the model to the budget
                log.warning("model %s: unload failed: %s", name, exc)

    async def run(self, model: str, task: Task, items: list[Any], options: dict[str, Any],
                  priority: str, timeout: float | None, cache: bool) -> RunResult:
        await self._admit()
        return await super().run(model, task, items, options, priority, timeout, cache)

    async def stream(self, model: str, request: GenerationInput) -> AsyncIterator[Any]:
        await self._admit()
        async for item in super().stream(model, request):
            yield item

    async def detokenize(self, model: str, token_ids: list[int]) -> str:
        await self._admit()
        return await super().detokenize(model, token_ids)

    async def tokenize(self, model: str, texts: list[str],
                       add_special_tokens: bool) -> list[list[TokenSpan]]:
        await self._admit()
        return await super().tokenize(model, texts, add_special_tokens)

    async def decode(self, model: str, sequences: list[list[int]],
                     skip_special_tokens: bool) -> list[str]:
        await self._admit()
        return await super().decode(model, sequences, skip_special_tokens)

    def check_health(self) -> None:
        """Unhealthy only when a model failed for good (its worker died past its restart
        budget: the process is suspect). A model that failed to load or whose breaker is
        open answers its own requests with a 503; replacing the replica would unload the
        others too."""
        broken = self.engine.broken()
        if broken:
            raise ModelUnavailable(f"models failed: {'; '.join(broken.values())}")
