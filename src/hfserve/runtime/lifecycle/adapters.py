"""LoRA adapters at run time, behind the seam: add one to a generation model (its name routes
requests to it at once) or remove one (new requests for it are a 404 at once, those in flight
finish first). A model whose skill runs in this process changes between two steps of its
loop; one in a model process of its own is unloaded and takes the new set when it next
loads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from hfserve.config import Settings
from hfserve.errors import InvalidRequest, ModelLoading, ModelNotFound
from hfserve.model_config import check_adapter_name
from hfserve.registry import adapter_paths
from hfserve.runtime.lifecycle.entry import ModelEntry
from hfserve.runtime.lifecycle.manager import ModelManager
from hfserve.types import ModelState, Task

log = logging.getLogger(__name__)


def check_serves(entry: ModelEntry, skill: Any) -> None:
    """A request for an adapter on a model whose backend cannot apply one: a 400 that says
    what to do, rather than an answer from the base model."""
    if not skill.serves_adapters:
        backend = skill.placement.backend
        raise InvalidRequest(
            f"model {entry.public!r} runs on the {backend} backend, which cannot apply LoRA "
            "adapters; serve it with backend: torch", param="model",
            code="adapters_unsupported")


class AdapterAdmin:
    def __init__(self, manager: ModelManager, settings: Settings) -> None:
        self.manager, self.settings = manager, settings

    def _entries(self, model: str) -> tuple[str, list[ModelEntry]]:
        """The served name ``model`` stands for and its entries (each replica's)."""
        served = self.manager.served_name(model)
        if served is None:
            raise ModelNotFound.named(model)
        names = self.manager.pools.get(served, [served])
        entries = [self.manager.entries[n] for n in names]
        for entry in entries:
            spec = entry.spec
            if spec is not None and spec.task != Task.TEXT_GENERATION:
                raise InvalidRequest(f"model {served!r} does not generate text: LoRA adapters "
                                     "are for generation models", param="model")
            if entry.loading is not None or entry.state == ModelState.DRAINING:
                raise ModelLoading(f"model {served!r} is loading or unloading; retry shortly")
        return served, entries

    async def add(self, model: str, name: str, path: str) -> None:
        try:
            check_adapter_name(name)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="name") from None
        served, entries = self._entries(model)
        real = str(adapter_paths.resolve(path, self.settings.roots()))
        self.manager.add_adapter_name(name, served)     # reserved: a second add is a 409
        try:
            for entry in entries:
                await self._apply(entry, lambda skill: skill.add_adapter(name, real))
                entry.config = entry.config.model_copy(
                    update={"adapters": {**entry.config.adapters, name: real}})
        except BaseException:
            self.manager.adapters.pop(name, None)
            for entry in entries:
                if name in entry.config.adapters:
                    await self._apply(entry, lambda skill: skill.remove_adapter(name))
                    entry.config = entry.config.model_copy(update={"adapters": {
                        k: v for k, v in entry.config.adapters.items() if k != name}})
            raise

    async def remove(self, model: str, name: str, in_flight: Callable[[], int]) -> None:
        served, entries = self._entries(model)
        if self.manager.adapters.get(name) != served:
            raise ModelNotFound(f"model {served!r} has no adapter {name!r}", param="name")
        del self.manager.adapters[name]       # new requests for it: 404 from now on
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for entry in entries:
            entry.config = entry.config.model_copy(update={"adapters": {
                k: v for k, v in entry.config.adapters.items() if k != name}})
            await self._apply(entry, lambda skill: skill.remove_adapter(name))

    async def _apply(self, entry: ModelEntry, change: Callable[[Any], None]) -> None:
        """Make the change on ``entry``'s loaded skill; an unloaded model takes its
        configuration's adapters when it loads."""
        skill, worker = entry.skill, entry.scheduler
        if skill is None or worker is None or entry.state != ModelState.READY:
            return
        check_serves(entry, skill)
        if not worker.runs_here:
            await self.manager.unload(entry, self.settings.drain_timeout_s)
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(worker.between_steps(
                lambda: change(skill))), self.settings.load_timeout_s)
        except (ValueError, TypeError, KeyError, RuntimeError, OSError) as exc:
            # peft's message may hold the folder's path: it goes to the log only.
            log.warning("LoRA adapter change on %s failed: %s", entry.name, exc)
            raise InvalidRequest(f"the adapter does not fit model {entry.public!r} "
                                 f"({type(exc).__name__})", param="path") from None
