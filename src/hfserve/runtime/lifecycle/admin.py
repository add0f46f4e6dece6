"""What an operator may do to the set of models at run time, behind the seam: load one
(with progress events), unload it (requests in flight finish first), register a local
model under the model roots, and forget one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import ValidationError

from hfserve.config import Settings
from hfserve.errors import (
    HFServeError,
    InvalidRequest,
    ModelExists,
    ModelUnavailable,
    UnsupportedTask,
)
from hfserve.model_config import ModelConfig
from hfserve.registry.roots import within_roots
from hfserve.runtime.lifecycle.manager import ModelManager
from hfserve.types import ModelState

FINAL = ("ready", "error")


class Admin:
    def __init__(self, manager: ModelManager, settings: Settings,
                 describe: Callable[[str], dict[str, Any]]) -> None:
        self.manager, self.settings, self.describe = manager, settings, describe

    def load_events(self, name: str, device: str | None = None,
                    backend: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Load ``name`` (on ``device``/``backend`` when given); the events say how it
        goes: ``resolving``, ``loading``, then ``ready`` or ``error``. Unknown or
        unsupported models raise here, before any event."""
        entry = self.manager.entry(name)
        if entry.state == ModelState.UNSUPPORTED:
            raise UnsupportedTask(f"model {name!r} cannot be served: {entry.error}",
                                  param="model")
        overrides = {k: v for k, v in (("device", device), ("backend", backend)) if v}
        try:
            changed = ModelConfig(**{**entry.config.model_dump(), **overrides})
        except ValidationError as exc:
            raise _invalid(exc) from None
        return self._load(entry, changed)

    async def _load(self, entry, config: ModelConfig) -> AsyncIterator[dict[str, Any]]:
        name = entry.name
        if config != entry.config:
            if entry.skill is not None:        # placed elsewhere now: move it
                await self.manager.unload(entry, self.settings.drain_timeout_s)
            entry.config, entry.excluded = config, set()
        # An operator's load is a fresh start: the breaker and a spent restart budget too.
        entry.breaker.success()
        entry.broken = False
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def note(phase: str, details: dict[str, Any]) -> None:
            events.put_nowait({"event": phase, "model": name, **details})

        if entry.loading is not None:
            note("loading", {})                # joins a load already under way
        job = asyncio.create_task(self.manager.ensure_loaded(
            entry, self.settings.load_timeout_s, note))
        while True:
            waiter = asyncio.create_task(events.get())
            await asyncio.wait({waiter, job}, return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                event = waiter.result()
                yield event
                if event["event"] in FINAL:
                    break
                continue
            waiter.cancel()
            while not events.empty():
                event = events.get_nowait()
                yield event
                if event["event"] in FINAL:
                    return
            error = job.exception()
            if error is None:
                yield {"event": "ready", "model": name, "device": entry.device_id}
            else:
                if not isinstance(error, HFServeError):
                    error = ModelUnavailable(f"model {name!r} failed to load: {error}")
                yield error_event(name, error)
            return
        await asyncio.gather(job, return_exceptions=True)

    async def unload(self, name: str) -> dict[str, Any]:
        entry = self.manager.entry(name)
        await self.manager.unload(entry, self.settings.drain_timeout_s)
        return self.describe(entry.name)

    async def register(self, fields: dict[str, Any]) -> dict[str, Any]:
        fields = dict(fields)
        name = fields.pop("id", None) or fields.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("id is required", param="id")
        real = within_roots(str(fields.get("source") or ""), self.settings.roots())
        fields.update(source=str(real), name=name)
        if self.settings.device != "auto" and fields.get("device", "auto") == "auto":
            fields["device"] = self.settings.device
        if self.settings.threads is not None:
            fields.setdefault("threads", self.settings.threads)
        try:
            config = ModelConfig(**fields)
        except ValidationError as exc:
            raise _invalid(exc) from None
        if any(n in self.manager.aliases for n in [name, *config.aliases]):
            raise ModelExists(f"a model named {name!r} exists already", param="id")
        entry = self.manager.add(config)
        try:
            await asyncio.to_thread(self.manager.check, entry)
        except Exception:
            self.manager.forget(entry)
            raise InvalidRequest(f"model {name!r} cannot be served: {entry.error}",
                                 param="source") from None
        return self.describe(entry.name)

    async def forget(self, name: str) -> None:
        entry = self.manager.entry(name)
        await self.manager.unload(entry, self.settings.drain_timeout_s)
        self.manager.forget(entry)


def error_event(name: str, error: HFServeError) -> dict[str, Any]:
    return {"event": "error", "model": name, "message": error.message, "code": error.code,
            "type": error.type, "status": error.status,
            "retry_after": error.headers.get("Retry-After")}


def _invalid(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return InvalidRequest(f"{where}: {first.get('msg')}", param=where or None)
