"""Engine façade: the only thing the API layer talks to. Validates and tokenizes (short inputs
on the event loop, long ones on a small thread pool), enforces context limits, and hands valid
work to the model's batcher or scheduler."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hfserve import metrics, plugins, usage
from hfserve.config import Settings
from hfserve.errors import (
    Cancelled,
    InvalidRequest,
    ModelLoading,
    Overloaded,
    ServerShuttingDown,
)
from hfserve.registry import skills as skill_table
from hfserve.runtime import served
from hfserve.runtime.caching.cached_results import CachedResults
from hfserve.runtime.caching.response_cache import ResponseCache
from hfserve.runtime.events import GenerationHandle, GenerationInput, RunResult, coalesce
from hfserve.runtime.generation import prompts
from hfserve.runtime.generation.scheduler import GenerationRequest
from hfserve.runtime.generation.stream import EventStream
from hfserve.runtime.generation.tool_choice import apply_tool_choice
from hfserve.runtime.introspection import Introspection
from hfserve.runtime.lifecycle import adapters, startup
from hfserve.runtime.lifecycle.adapters import AdapterAdmin
from hfserve.runtime.lifecycle.admin import Admin
from hfserve.runtime.lifecycle.breaker import BreakerState, model_failure
from hfserve.runtime.lifecycle.manager import ModelManager
from hfserve.runtime.routing.groups import Groups, Pick
from hfserve.runtime.routing.replicas import least_loaded
from hfserve.skills.base import BatchSkill, TextGenerator
from hfserve.types import ModelState, Task, TokenSpan
from hfserve.validation import require_unicode

PRIORITIES = {"high": 0, "normal": 1, "low": 2}


class Engine(Introspection):
    def __init__(self, settings: Settings, manager: ModelManager | None = None) -> None:
        self.settings = settings
        plugins.use_folder(settings.skills_dir)
        skill_table.register_installed()
        skill_table.register_all({task.value: target for task, target in settings.skills.items()})
        self.manager = manager or ModelManager(settings.model_configs(), settings.cache_dir,
                                               settings.memory_limits, settings)
        # request id -> model name and the request's event stream
        self._streams: dict[str, tuple[str, EventStream]] = {}
        # request id -> the LoRA adapter it generates with (for those that do)
        self._adapter_of: dict[str, str] = {}
        self.groups = Groups(settings.groups, self.manager.served_name)
        self._rng = random.Random()
        # generation request id -> the group choice its end reports to the group's bandit
        self._picks: dict[str, Pick] = {}
        self._loading: asyncio.Task | None = None
        self._reaper: asyncio.Task | None = None
        self.draining = False
        # Tokenization and chat templates run here, off the event loop. One small pool rather
        # than asyncio's default (up to cores + 4 threads), so few threads contend for the GIL
        # with the event loop and the model threads (64 clients: 507 -> 529 sentences/s).
        self._prepare_pool = ThreadPoolExecutor(2, thread_name_prefix="prepare")
        self.admin = Admin(self.manager, settings, self.describe)
        self.adapter_admin = AdapterAdmin(self.manager, settings)
        self.cached = CachedResults(ResponseCache(settings.response_cache_bytes,
                                                  settings.response_cache_ttl_s))

    # --- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        """Check that every known model can be served (a configured one that cannot fails
        the start, unless ``skip_unservable_models``), then load the ``preload`` models in
        the background: the server answers at once (503 for a model still loading at
        start-up) and /ready turns 200 when they are loaded."""
        await asyncio.to_thread(startup.check_models, self.manager, self.settings)
        names = [e.name for e in self.manager.entries.values()
                 if self.settings.preloads(e.name, e.config.aliases)
                 and e.state == ModelState.UNLOADED]
        for name in names:       # before the first /ready can be answered
            self.manager.entries[name].scheduled = True
        if names:
            self._loading = asyncio.create_task(
                startup.preload(self.manager, self.settings, names))
        self._reaper = asyncio.create_task(startup.reap_idle(self.manager, self.settings))

    async def _ready(self, model: str, task: Task | None, timeout: float | None = None):
        if self.draining:
            raise ServerShuttingDown("the server is shutting down; retry on another replica",
                                     headers={"Retry-After": "1"})
        # Wait for a load no longer than the client would wait for the answer.
        wait = min(self.settings.load_timeout_s, timeout or self.settings.request_timeout_s)
        entry = await self.manager.ready(self._replica(model), task, wait)
        served.note(entry.public, entry.name if entry.config.replica_of else None)
        return entry

    def _replica(self, model: str, avoid: str | None = None) -> str:
        """For a replicated model, the replica a request goes to: the less loaded of two
        whose breaker lets requests through (any, when none does), other than ``avoid``."""
        pool = self.manager.pools.get(model)
        if pool is None:
            return model
        others = [n for n in pool if n != avoid] or pool
        live = [n for n in others if self._available(n)] or others
        chosen = least_loaded(live, lambda n: self.manager.entries[n].load, self._rng)
        metrics.REPLICA_REQUESTS.labels(self.manager.entries[chosen].public, chosen).inc()
        return chosen

    def _pick(self, model: str, task: Task | None) -> Pick:
        """The model a request for ``model`` runs on: itself, or the arm its group chooses
        among the members whose breaker lets requests through."""
        return self.groups.pick(model, task, self._available)

    def _available(self, name: str) -> bool:
        """Whether ``name`` takes a request now: serving, or unloaded (it loads on one),
        and its breaker closed or probing."""
        entry = self.manager.entries.get(name)
        return entry is not None and not entry.broken and not entry.scheduled and \
            entry.state in (ModelState.READY, ModelState.UNLOADED) and \
            entry.breaker.state != BreakerState.OPEN

    def _report(self, pick: Pick, outcome: BaseException | None) -> None:
        """A group's request ended: a model's failure or success is its arm's reward; a
        client's error or a cancel tells nothing about the model."""
        if outcome is None or model_failure(outcome):
            self.groups.finish(pick, outcome is None)

    async def _off_loop(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._prepare_pool, fn, *args)

    async def close(self) -> None:
        for task in (self._loading, self._reaper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.manager.close()
        self._prepare_pool.shutdown(wait=False)

    # --- encoder work --------------------------------------------------------------
    async def run(self, model: str, task: Task, items: list[Any],
                  options: dict[str, Any] | None = None, *, priority: str = "normal",
                  timeout: float | None = None, cache: bool = True) -> RunResult:
        options = options or {}
        if not items:
            raise InvalidRequest("input must not be empty", param="input")
        pick = self._pick(model, task)
        failed: str | None = None
        try:
            while True:
                replica = self._replica(pick.model, avoid=failed)
                try:
                    entry = await self._ready(replica, task, timeout)
                    result = await self._holding(entry, self._run(
                        entry, task, items, options, priority, timeout, cache))
                    break
                except Exception as exc:
                    # A replica failed the request or cannot take it now (unloading, its
                    # breaker open): another one answers it, once. A model's failure counts
                    # on the first one's breaker, which opens on a replica that keeps
                    # failing and takes it out of the choice.
                    if failed is not None or replica == pick.model or not (
                            model_failure(exc) or isinstance(exc, ModelLoading)):
                        raise
                    failed = replica
        except BaseException as exc:
            self._report(pick, exc)
            raise
        self._report(pick, None)
        self.groups.remember(filter(None, [served.request_id()]), pick)
        return result

    async def _holding(self, entry, work: Awaitable[Any]) -> Any:
        """Await ``work`` done on ``entry`` (admitted by ``_ready``), then release it with the
        outcome (a model's failure counts against its breaker, a client's error does not)."""
        try:
            result = await work
        except BaseException as exc:
            self.manager.release(entry, exc)
            raise
        self.manager.release(entry)
        return result

    async def _run(self, entry, task: Task, items: list[Any], options: dict[str, Any],
                   priority: str, timeout: float | None, cache: bool) -> RunResult:
        # More than could ever be queued: retrying would not help.
        prompts.check_count(len(items), min(self.settings.max_request_items,
                                          entry.batcher.max_queue), "input")
        for item in items:
            if isinstance(item, str):
                require_unicode(item, "input")
        rank = self._priority(priority)
        keys = None
        if cache:    # hashing long inputs is kept off the event loop, as tokenizing is
            keys = self.cached.keys(entry, task, options, items) if prompts.small(items) else \
                await self._off_loop(self.cached.keys, entry, task, options, items)
        # Cached inputs are answered here, without tokenizing or queueing; the rest run
        # as one submission (an input repeated within it, once), as without the cache.
        done = self.cached.lookup(entry.name, keys, len(items))
        todo, repeats = self.cached.pending(keys, done)
        skill: BatchSkill = entry.skill  # type: ignore[assignment]
        def prepare() -> list[Any]:
            return [skill.prepare(items[i], options) for i in todo]

        # A thread hop costs more than tokenizing a few short texts (64 clients sending one
        # sentence each: measured below); long inputs still leave the loop free.
        missed = [items[i] for i in todo]
        prepared = prepare() if prompts.small(missed) else await self._off_loop(prepare)
        if prepared:
            results = await entry.batcher.submit(
                prepared, [p.cost for p in prepared], priority=rank,
                deadline=self._deadline(timeout))
            for i, p, result in zip(todo, prepared, results, strict=True):
                done[i] = (result, p.cost)
            self.cached.store(entry.name, keys, todo, done)
            for i, same in repeats:
                done[i] = self.cached.copy(done[same])  # type: ignore[arg-type]
        prompt_tokens = sum(cost for _, cost in done)
        usage.record(prompt_tokens)
        return RunResult(results=[result for result, _ in done], prompt_tokens=prompt_tokens,
                         model=entry.public)

    # --- generation ----------------------------------------------------------------
    async def stream(self, model: str, request: GenerationInput) -> GenerationHandle:
        return (await self.stream_many(model, [request]))[0]

    async def stream_many(self, model: str, requests: list[GenerationInput]
                          ) -> list[GenerationHandle]:
        """Start several generations as one client request (a prompt list): every one is
        admitted, or none is (the queue has no room for all, or one prompt is invalid).
        A group's bandit hears of each generation when it ends. ``model`` may name a LoRA
        adapter (``ADAPTER`` or ``MODEL:ADAPTER``): its model generates, with the adapter."""
        asked, adapter = model, None
        route = self.manager.adapter_route(model)
        if route is not None:
            model, adapter = route
        pick = self._pick(model, Task.TEXT_GENERATION)
        try:
            entry = await self._ready(pick.model, Task.TEXT_GENERATION,
                                      max((r.timeout or 0) for r in requests) or None)
        except BaseException as exc:
            self._report(pick, exc)
            raise
        try:
            handles = await self._start_streams(entry, requests, adapter, asked)
        except BaseException as exc:
            self.manager.release(entry, exc)
            self._report(pick, exc)
            raise
        entry.busy += len(handles) - 1       # one admission per handle, ended with it
        if pick.group is not None:
            for handle in handles:
                self._picks[handle.request_id] = pick
            self.groups.remember([*filter(None, [served.request_id()]),
                                  *(h.request_id for h in handles)], pick)
        return handles

    async def _start_streams(self, entry, requests: list[GenerationInput],
                             adapter: str | None = None, asked: str | None = None
                             ) -> list[GenerationHandle]:
        skill: TextGenerator = entry.skill  # type: ignore[assignment]
        worker = entry.scheduler
        if adapter is not None:
            adapters.check_serves(entry, skill)
        sequences = sum(r.n for r in requests)
        limit = self.settings.max_request_sequences
        if sequences > limit or len(requests) > worker.max_queue:
            most = min(limit, worker.max_queue)
            raise InvalidRequest(f"this request asks for {sequences} sequences (prompts x n); "
                                 f"a request may ask for at most {most}", param="prompt",
                                 code="too_many_sequences")
        parsers = [apply_tool_choice(r, entry.config.tool_parser or skill.tool_parser,
                                     skill.check_constraint)
                   if r.messages is not None and (r.options.get("tools")
                                                  or r.options.get("tool_choice")) else None
                   for r in requests]
        for request in requests:
            prompts.check_capabilities(skill, request.params)
        texts = [t for r in requests for t in prompts.texts(r)]
        trust = self.settings.trust_request_chat_template
        encoded = [prompts.encode(skill, r, trust) for r in requests] if prompts.small(texts) \
            else await self._off_loop(lambda: [prompts.encode(skill, r, trust) for r in requests])
        if len(requests) > 1 and worker.queue_depth + len(requests) > worker.max_queue:
            # Checked and submitted without a pause for the event loop, so the room seen
            # here is there for every submit below (the worker only ever takes from it).
            raise Overloaded(f"model {entry.name!r} has no room for {len(requests)} more "
                             "requests; retry later", retry_after=1.0)
        loop = asyncio.get_running_loop()
        work = []
        for request, (prompt_ids, media) in zip(requests, encoded, strict=True):
            params = request.params
            params.max_tokens = prompts.max_tokens(skill, entry.config.max_tokens_default,
                                                 len(prompt_ids), request.max_tokens)
            work.append(GenerationRequest(
                request_id=uuid.uuid4().hex, prompt_ids=prompt_ids, params=params,
                n=request.n, priority=self._priority(request.priority),
                deadline=self._deadline(request.timeout), adapter=adapter, media=media))
        public = asked if adapter is not None else entry.public
        handles: list[GenerationHandle] = []
        try:
            for item, parser in zip(work, parsers, strict=True):
                events = EventStream(loop, combine=coalesce)
                worker.submit(item, events)
                self._streams[item.request_id] = (entry.name, events)
                if adapter is not None:
                    self._adapter_of[item.request_id] = adapter
                handles.append(GenerationHandle(item.request_id, public, item.prompt_ids,
                                                events, int(time.time()), self._end,
                                                tool_parser=parser))
        except BaseException:
            for handle in handles:     # all or none
                self._streams.pop(handle.request_id, None)
                self._adapter_of.pop(handle.request_id, None)
                entry.scheduler.abort(handle.request_id)
            raise
        return handles

    async def detokenize(self, model: str, token_ids: list[int]) -> str:
        entry = await self.manager.ready(model, Task.TEXT_GENERATION)
        return await self._holding(entry, self._off_loop(entry.skill.decode_tokens, token_ids))

    # --- the tokenizer's view ------------------------------------------------------
    async def tokenize(self, model: str, texts: list[str],
                       add_special_tokens: bool = True) -> list[list[TokenSpan]]:
        prompts.check_count(len(texts), self.settings.max_request_items, "inputs")
        for text in texts:
            require_unicode(text, "inputs")
        entry = await self._ready(model, None)
        return await self._holding(entry, self._off_loop(
            lambda: [entry.skill.tokenize(t, add_special_tokens) for t in texts]))

    async def decode(self, model: str, sequences: list[list[int]],
                     skip_special_tokens: bool = True) -> list[str]:
        prompts.check_count(len(sequences), self.settings.max_request_items, "ids")
        entry = await self._ready(model, None)
        return await self._holding(entry, self._off_loop(
            lambda: [entry.skill.detokenize(ids, skip_special_tokens) for ids in sequences]))

    def abort(self, request_id: str) -> None:
        self._adapter_of.pop(request_id, None)
        name, events = self._streams.pop(request_id, (None, None))
        entry = self.manager.entries.get(name) if name is not None else None
        if entry is None:
            return
        # A stream the model failed counts against its breaker; one its client left does not.
        failed = events.error if events is not None else None
        self.manager.release(entry, failed or Cancelled("aborted"))
        pick = self._picks.pop(request_id, None)
        if pick is not None:
            self._report(pick, failed or Cancelled("aborted"))
        if entry.scheduler is not None:
            entry.scheduler.abort(request_id)

    def done(self, request_id: str) -> None:
        self._adapter_of.pop(request_id, None)
        name, _ = self._streams.pop(request_id, (None, None))
        entry = self.manager.entries.get(name) if name is not None else None
        if entry is not None:
            self.manager.release(entry)
        pick = self._picks.pop(request_id, None)
        if pick is not None:
            self._report(pick, None)

    def _end(self, request_id: str, finished: bool) -> None:
        """A handle closed: forget a finished generation, abort one that was not."""
        if finished:
            self.done(request_id)
        else:
            self.abort(request_id)

    def end_streams(self, reason: str) -> int:
        """End every generation still running with ``ServerShuttingDown`` (its client
        gets that error, a stream its error event and ``[DONE]``) and abort it in its
        model; returns how many there were. For a shutdown whose drain time is up."""
        ended = list(self._streams)
        for request_id in ended:
            _, events = self._streams[request_id]
            events.fail(ServerShuttingDown(reason))
            self.abort(request_id)
        return len(ended)

    def _priority(self, name: str) -> int:
        if name not in PRIORITIES:
            raise InvalidRequest(f"priority must be one of {', '.join(PRIORITIES)}",
                                 param="priority")
        return PRIORITIES[name]

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (timeout or self.settings.request_timeout_s)

    # --- administration (runtime/lifecycle/admin.py) ----------------------------------------
    def load_events(self, name: str, device: str | None = None,
                    backend: str | None = None) -> AsyncIterator[dict[str, Any]]:
        return self.admin.load_events(name, device, backend)

    async def unload_model(self, name: str) -> dict[str, Any]:
        return await self.admin.unload(name)

    async def register_model(self, fields: dict[str, Any]) -> dict[str, Any]:
        return await self.admin.register(fields)

    async def add_adapter(self, model: str, name: str, path: str) -> dict[str, Any]:
        await self.adapter_admin.add(model, name, path)
        return self.describe(name)

    async def remove_adapter(self, model: str, name: str) -> None:
        await self.adapter_admin.remove(model, name, lambda: sum(
            1 for a in self._adapter_of.values() if a == name))

    async def forget_model(self, name: str) -> None:
        served = self.manager.entry(name).name
        await self.admin.forget(name)
        self.cached.forget(served)

    def begin_drain(self) -> None:
        """The server is stopping: readiness turns false and new work is refused; what
        runs goes on until ``end_streams``."""
        self.draining = True
