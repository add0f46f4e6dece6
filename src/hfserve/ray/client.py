"""The ingress's engine: an ``EngineClient`` whose per-model calls go to the model's Ray Serve
deployment (streams through ``.options(stream=True)``; a multiplexed deployment's with
``multiplexed_model_id``), so the HTTP app in front of it is the single server's own. A
request for a model group runs on the member the group's bandit picks here, and its outcome
is the arm's reward, as in one process. What routes read without awaiting (model objects,
readiness) is each deployment's last answer to a status call made every ``POLL_S``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from hfserve.config import Settings
from hfserve.errors import (
    Cancelled,
    DeadlineExceeded,
    HFServeError,
    InvalidRequest,
    ModelNotFound,
    ServerShuttingDown,
)
from hfserve.ray.layout import by_model, plan
from hfserve.ray.wire import StreamStart, server_error
from hfserve.runtime import served
from hfserve.runtime.events import GenerationHandle, GenerationInput, RunResult, coalesce
from hfserve.runtime.generation.stream import EventStream
from hfserve.runtime.introspection import UNKNOWN_MODEL
from hfserve.runtime.lifecycle.breaker import model_failure
from hfserve.runtime.routing.groups import Groups, Pick
from hfserve.types import Task, TokenSpan

log = logging.getLogger(__name__)

POLL_S = 1.0          # how often each deployment's status is read
STATUS_TIMEOUT_S = 10.0
NOT_HERE = ("in Ray mode the served models are the application's deployments: change the "
            "configuration and deploy it again")


class RayEngineClient:
    """``handles``: deployment name (``ray.layout``) -> its handle."""

    def __init__(self, settings: Settings, handles: dict[str, Any]) -> None:
        self.settings = settings
        self.handles = handles
        self.planned = by_model(plan(settings))
        self.aliases: dict[str, str] = {}
        for mc in settings.model_configs():
            for alias in [mc.served_name, *mc.aliases]:
                self.aliases[alias] = mc.served_name
        self.groups = Groups(settings.groups, self.aliases.get)
        # generation request id -> the group choice its end reports to the group's bandit
        self._picks: dict[str, Pick] = {}
        self._status: dict[str, dict[str, Any]] = {}     # by deployment
        self._hardware: dict[str, dict[str, Any]] = {}
        # request id -> the stream feeding its handle and the task pumping it
        self._streams: dict[str, tuple[EventStream, asyncio.Task]] = {}
        self._watcher: asyncio.Task | None = None
        self.draining = False

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.gather(self._poll(), self._read_hardware())
        self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for _, pump in list(self._streams.values()):
            pump.cancel()

    def begin_drain(self) -> None:
        self.draining = True

    def end_streams(self, reason: str) -> int:
        ended = list(self._streams.items())
        for _, (events, pump) in ended:
            pump.cancel()
            events.fail(ServerShuttingDown(reason))
        self._streams.clear()
        return len(ended)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            await self._poll()

    async def _poll(self) -> None:
        names = list(self.handles)
        answers = await asyncio.gather(*(self._ask(n, "status") for n in names),
                                       return_exceptions=True)
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning("deployment %s: no status: %s", name, answer)
                states = {m: "unavailable" for m in self._members(name)}
                self._status[name] = {**self._status.get(name, {}), "ready": False,
                                      "states": states, "unavailable": True}
            else:
                self._status[name] = answer

    async def _ask(self, name: str, method: str, *args: Any) -> Any:
        return await self._call(name, getattr(self.handles[name], method).remote(*args),
                                STATUS_TIMEOUT_S)

    def _members(self, deployment: str) -> list[str]:
        return [m for m, p in self.planned.items() if p.name == deployment]

    # --- calls to a deployment -------------------------------------------------------------
    def _deployment(self, model: str) -> str:
        """The served name ``model`` stands for, noted as the request's model."""
        if self.draining:
            raise ServerShuttingDown("the server is shutting down; retry on another replica",
                                     headers={"Retry-After": "1"})
        name = self.aliases.get(model)
        if name is None:
            raise ModelNotFound.named(model)
        served.note(name)
        return name

    def _handle(self, name: str) -> Any:
        """The handle a call for served model ``name`` goes through: a multiplexed
        deployment's names the model, for Ray Serve to route it to a replica holding it."""
        planned = self.planned[name]
        handle = self.handles[planned.name]
        return handle.options(multiplexed_model_id=name) if planned.multiplexed else handle

    def _pick(self, model: str, task: Task | None) -> Pick:
        """The model a request for ``model`` runs on: itself, or the member its group's
        bandit picks among those whose deployment's last status lets requests through."""
        return self.groups.pick(model, task, self._available)

    def _available(self, name: str) -> bool:
        planned = self.planned.get(name)
        status = self._status.get(planned.name, {}) if planned is not None else {}
        state = status.get("states", {}).get(name, "loading")
        return state in ("ready", "unloaded") and \
            status.get("breakers", {}).get(name) != "open"

    def _report(self, pick: Pick, outcome: BaseException | None) -> None:
        """A group's request ended: a model's failure or success is its arm's reward; a
        client's error or a cancel tells nothing about the model."""
        if outcome is None or model_failure(outcome):
            self.groups.finish(pick, outcome is None)

    async def _call(self, name: str, response: Awaitable[Any],
                    timeout: float | None = None) -> Any:
        """Await a deployment's answer, within the request's deadline: with no replica to
        take it (all dead, new ones loading), Ray Serve holds a request until one is up."""
        limit = timeout or self.settings.request_timeout_s
        try:
            return await asyncio.wait_for(response, limit)
        except TimeoutError:
            raise DeadlineExceeded(f"model {name!r} did not answer within {limit:g} s; "
                                   "its replicas may be restarting") from None
        except Exception as exc:
            raise server_error(exc, name) from None

    async def run(self, model: str, task: Task, items: list[Any],
                  options: dict[str, Any] | None = None, *, priority: str = "normal",
                  timeout: float | None = None, cache: bool = True) -> RunResult:
        pick = self._pick(model, task)
        try:
            name = self._deployment(pick.model)
            result = await self._call(name, self._handle(name).run.remote(
                pick.model, task, items, options or {}, priority, timeout, cache), timeout)
        except BaseException as exc:
            self._report(pick, exc)
            raise
        self._report(pick, None)
        self.groups.remember(filter(None, [served.request_id()]), pick)
        return result

    async def stream(self, model: str, request: GenerationInput) -> GenerationHandle:
        return (await self.stream_many(model, [request]))[0]

    async def _start(self, model: str, request: GenerationInput) -> GenerationHandle:
        name = self._deployment(model)
        stream = self._handle(name).options(stream=True).stream.remote(model, request)
        try:
            start: StreamStart = await self._call(name, stream.__anext__(), request.timeout)
        except BaseException:
            stream.cancel()
            raise
        events = EventStream(asyncio.get_running_loop(), combine=coalesce)
        pump = asyncio.create_task(self._pump(name, stream, events))
        self._streams[start.request_id] = (events, pump)
        return GenerationHandle(start.request_id, start.model, start.prompt_ids, events,
                                start.created, self._end, tool_parser=start.tool_parser)

    async def _pump(self, name: str, stream: Any, events: EventStream) -> None:
        """The deployment's events into the handle's stream; a replica that dies mid-stream
        ends it with a 503 error (an SSE error event, then ``[DONE]``)."""
        try:
            async for event in stream:
                events.push([event])
        except asyncio.CancelledError:
            stream.cancel()
            raise
        except Exception as exc:
            events.fail(server_error(exc, name))
            return
        events.close()

    def _end(self, request_id: str, finished: bool) -> None:
        """A handle closed: a generation not finished is cancelled in its replica; a
        group's bandit hears how it ended."""
        events, pump = self._streams.pop(request_id, (None, None))
        if pump is not None and not finished:
            pump.cancel()
        pick = self._picks.pop(request_id, None)
        if pick is not None:
            failed = events.error if events is not None else None
            self._report(pick, failed or (None if finished else Cancelled("aborted")))

    async def stream_many(self, model: str, requests: list[GenerationInput]
                          ) -> list[GenerationHandle]:
        """Each prompt's generation, all on the model a group picks once; when one cannot
        start, those started are ended. A group's bandit hears of each when it ends."""
        pick = self._pick(model, Task.TEXT_GENERATION)
        handles: list[GenerationHandle] = []
        try:
            for request in requests:
                handles.append(await self._start(pick.model, request))
        except BaseException as exc:
            for handle in handles:
                handle.close()
            self._report(pick, exc)
            raise
        if pick.group is not None:
            for handle in handles:
                self._picks[handle.request_id] = pick
            self.groups.remember([*filter(None, [served.request_id()]),
                                  *(h.request_id for h in handles)], pick)
        return handles

    async def detokenize(self, model: str, token_ids: list[int]) -> str:
        name = self._deployment(model)
        return await self._call(name, self._handle(name).detokenize.remote(model, token_ids))

    async def tokenize(self, model: str, texts: list[str],
                       add_special_tokens: bool = True) -> list[list[TokenSpan]]:
        name = self._deployment(model)
        return await self._call(name, self._handle(name).tokenize.remote(
            model, texts, add_special_tokens))

    async def decode(self, model: str, sequences: list[list[int]],
                     skip_special_tokens: bool = True) -> list[str]:
        name = self._deployment(model)
        return await self._call(name, self._handle(name).decode.remote(
            model, sequences, skip_special_tokens))

    # --- introspection (each deployment's last status) -------------------------------------
    def models(self) -> list[dict[str, Any]]:
        return [*(card for name in self.handles for card in self._cards(name)),
                *self.groups.listed()]

    def _cards(self, deployment: str) -> list[dict[str, Any]]:
        """The model objects of a deployment's models (a multiplexed one's as the replica
        that answered last holds them)."""
        status = self._status.get(deployment, {})
        cards = status.get("models") or [{"id": m, "object": "model", "created": 0,
                                          "owned_by": "hfserve", "state": "loading"}
                                         for m in self._members(deployment)]
        if status.get("unavailable"):
            return [{**card, "state": "unavailable"} for card in cards]
        return cards

    def describe(self, name: str) -> dict[str, Any]:
        if name in self.groups.configs:
            return next(g for g in self.groups.listed() if g["id"] == name)
        served_name = self.aliases.get(name)
        if served_name is None:
            raise ModelNotFound.named(name)
        cards = self._cards(self.planned[served_name].name)
        return next((c for c in cards if c["id"] == served_name), cards[0])

    def label_of(self, name: str) -> str:
        if name in self.groups.configs:
            return name
        return self.aliases.get(name, UNKNOWN_MODEL)

    def group(self, name: str) -> dict[str, Any]:
        return self.groups.describe(name)

    def feedback(self, response_id: str, score: float) -> dict[str, Any]:
        return self.groups.feedback(response_id, score)

    def hardware(self) -> dict[str, Any]:
        """Each deployment's hardware, as one of its replicas sees it (read at start)."""
        return {"deployments": dict(self._hardware)}

    async def _read_hardware(self) -> None:
        for name in self.handles:
            with contextlib.suppress(HFServeError):
                self._hardware[name] = await self._ask(name, "hardware")

    def ready(self) -> tuple[bool, dict[str, str]]:
        states: dict[str, str] = {}
        ok = not self.draining
        for name in self.handles:
            status = self._status.get(name, {})
            states.update(status.get("states") or dict.fromkeys(self._members(name),
                                                                "loading"))
            ok = ok and bool(status.get("ready"))
        return ok, states

    def breakers(self) -> dict[str, str]:
        return {k: v for s in self._status.values() for k, v in s.get("breakers", {}).items()}

    def broken(self) -> dict[str, str]:
        return {k: v for s in self._status.values() for k, v in s.get("broken", {}).items()}

    # --- administration: the deployments are the configuration ----------------------------
    def load_events(self, name: str, device: str | None = None,
                    backend: str | None = None) -> AsyncIterator[dict[str, Any]]:
        raise InvalidRequest(NOT_HERE, code="not_in_ray_mode")

    async def unload_model(self, name: str) -> dict[str, Any]:
        raise InvalidRequest(NOT_HERE, code="not_in_ray_mode")

    async def register_model(self, fields: dict[str, Any]) -> dict[str, Any]:
        raise InvalidRequest(NOT_HERE, code="not_in_ray_mode")

    async def forget_model(self, name: str) -> None:
        raise InvalidRequest(NOT_HERE, code="not_in_ray_mode")

    async def add_adapter(self, model: str, name: str, path: str) -> dict[str, Any]:
        raise InvalidRequest(NOT_HERE, code="not_in_ray_mode")

    async def remove_adapter(self, model: str, name: str) -> None:
        raise InvalidRequest(NOT_HERE, code="not_in_ray_mode")
