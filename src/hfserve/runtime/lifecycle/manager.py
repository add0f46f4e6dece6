"""ModelManager: owns every known model's lifecycle (spec -> placement -> residency ->
loaded skill -> worker -> unload), one lock per model, and answers which model serves a
request. A request for an unloaded model loads it; room is made on its device by unloading
the least recently used idle models (``runtime/lifecycle/residency.py``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hfserve import metrics
from hfserve.config import Settings
from hfserve.errors import (
    CircuitOpen,
    HFServeError,
    MemoryExhausted,
    ModelLoading,
    ModelUnavailable,
    UnsupportedTask,
)
from hfserve.model_config import ModelConfig
from hfserve.registry import build_spec
from hfserve.runtime.lifecycle import footprint, heap
from hfserve.runtime.lifecycle.breaker import model_failure
from hfserve.runtime.lifecycle.catalog import Catalog
from hfserve.runtime.lifecycle.entry import ModelEntry, brief
from hfserve.runtime.lifecycle.loading import load_on_chain, measure, resolve
from hfserve.runtime.lifecycle.memory_budget import MemoryBudget
from hfserve.runtime.lifecycle.placement import Choice, choices
from hfserve.runtime.lifecycle.skill_table import classes_for, skill_classes
from hfserve.runtime.workers import new_skill, start_worker
from hfserve.types import ModelState, Task

log = logging.getLogger("hfserve.manager")
_brief = brief
Progress = Callable[[str, dict], None] | None

__all__ = ["ModelEntry", "ModelManager", "skill_classes"]


def _nothing(phase: str, details: dict) -> None:
    return None


class ModelManager(Catalog):
    def __init__(self, configs: list[ModelConfig], cache_dir: Path | None = None,
                 memory_limits: dict[str, int] | None = None,
                 settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.cache_dir = cache_dir or Path.home() / ".cache" / "hfserve"
        self.memory_limits = memory_limits or {}
        self.budget = MemoryBudget(self.memory_limits, self.settings.memory_reserve)
        super().__init__(self.settings)
        # One load at a time: loads compete for the same cores and memory, and the first
        # import of transformers from two threads at once is not safe.
        self._load_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        for mc in configs:
            self.add_replicated(mc)

    def check(self, entry: ModelEntry) -> None:
        """Read the model's spec and find its skill, without loading it. A discovered model
        that cannot be served becomes ``unsupported`` with its reason; for a configured one
        the error is raised (the caller decides whether that fails the start)."""
        try:
            if entry.spec is None:
                entry.spec = build_spec(entry.config)
            # The device chain too: a model no device can run as configured (a dtype or
            # device the machine lacks) is a configuration error, found before any load.
            choices(entry.spec, entry.config, classes_for(entry.spec), self.cache_dir,
                    memory_limits=self.memory_limits)
            entry.estimated_bytes = footprint.estimate(
                entry.spec, entry.config.dtype, entry.config.max_concurrent)
        except Exception as exc:
            entry.error = exc.message if isinstance(exc, HFServeError) else brief(exc)
            if entry.config.discovered:
                entry.state = ModelState.UNSUPPORTED
                return
            entry.state = ModelState.FAILED
            raise

    # --- serving --------------------------------------------------------------------------
    async def ready(self, name: str, task: Task | None,
                    wait: float | None = None) -> ModelEntry:
        """The entry serving ``name`` (for ``task``; None: any), loaded (on demand, waiting
        up to ``wait`` seconds for the load) and admitted by its breaker; typed errors
        otherwise. The caller releases it (``release``) when the request ends."""
        entry = self.entry(name)
        companion = self.companions.get(entry.public, {}).get(task) if task else None
        if companion is not None and companion != entry.name:
            return await self.ready(companion, task, wait)
        if entry.state == ModelState.UNSUPPORTED:
            raise UnsupportedTask(f"model {name!r} cannot be served: {entry.error}",
                                  param="model")
        if entry.scheduled or (entry.state == ModelState.LOADING and entry.loading is None):
            # Loading at start-up, or being restarted or moved: readiness is false, and a
            # balancer sends the request elsewhere rather than have it wait here.
            raise ModelLoading(f"model {name!r} is loading; retry shortly")
        if entry.state == ModelState.DRAINING:
            # Evicted or unloaded just now: the request waits for the unload to end and
            # loads the model again, as for any unloaded model, rather than fail.
            await self._unloaded(entry, self.settings.load_timeout_s if wait is None else wait)
        if entry.broken:
            raise ModelUnavailable(f"model {name!r} failed: {entry.error}")
        if not entry.breaker.allow():
            metrics.REJECTED.labels(entry.name, "circuit_open").inc()
            raise CircuitOpen(f"model {name!r} failed {entry.breaker.consecutive} times in a "
                              "row; requests fail fast for a while",
                              retry_after=entry.breaker.retry_after())
        # Counted in flight from here: a model just loaded for waiting requests is not
        # evicted by the next load before they reach it.
        entry.busy += 1
        try:
            if entry.state != ModelState.READY:
                await self.ensure_loaded(entry, self.settings.load_timeout_s
                                         if wait is None else wait)
            served = entry.served_tasks()
            if task is not None and task not in served:
                raise UnsupportedTask(
                    f"model {name!r} serves {', '.join(t.value for t in served) or 'nothing'}"
                    f", not {task.value}", param="model")
            worker = entry.batcher or entry.scheduler
            if worker is None or not worker.alive:
                raise ModelUnavailable(f"model {name!r} is not running")
        except BaseException:
            entry.busy -= 1
            entry.breaker.release_probe()
            raise
        entry.last_used = time.monotonic()
        return entry

    async def _unloaded(self, entry: ModelEntry, wait: float) -> None:
        """Wait up to ``wait`` seconds for a draining model's unload to end."""
        deadline = time.monotonic() + wait
        while entry.state == ModelState.DRAINING:
            if time.monotonic() > deadline:
                raise ModelLoading(f"model {entry.name!r} is unloading; retry shortly",
                                   retry_after=1)
            await asyncio.sleep(0.02)

    def release(self, entry: ModelEntry, outcome: BaseException | None = None) -> None:
        """A request admitted by ``ready`` ended; a model's own failure counts against its
        breaker, a client's error or a cancel does not."""
        entry.busy = max(0, entry.busy - 1)
        entry.last_used = time.monotonic()
        if outcome is None:
            entry.breaker.success()
        elif model_failure(outcome):
            entry.breaker.failure()
        else:
            entry.breaker.release_probe()
        metrics.set_breaker(entry.name, entry.breaker.state.value)

    async def ensure_loaded(self, entry: ModelEntry, wait: float,
                            progress: Progress = None) -> None:
        """Load the model, or join the load already under way; raises ``ModelLoading`` when
        it is not ready within ``wait`` seconds (the load goes on)."""
        if entry.state == ModelState.READY:
            return
        task = entry.loading
        if task is None:
            task = entry.loading = asyncio.create_task(self.load(entry, progress))

            def finished(_: asyncio.Task) -> None:
                if entry.loading is task:
                    entry.loading = None

            task.add_done_callback(finished)
        try:
            await asyncio.wait_for(asyncio.shield(task), max(wait, 0.001))
        except TimeoutError:
            raise ModelLoading(f"model {entry.name!r} is still loading; retry shortly",
                               retry_after=min(wait, 30) or 1) from None
        if entry.state == ModelState.DRAINING and entry.load_error is None:
            return      # loaded, and drained for a later load: this request is in flight
        if entry.state != ModelState.READY:
            raise entry.load_error or ModelUnavailable(f"model {entry.name!r} is not loaded")

    # --- loading --------------------------------------------------------------------------
    async def load(self, entry: ModelEntry, progress: Progress = None) -> None:
        """Resolve, make room, load and start the model's worker; on failure the entry is
        ``failed`` with its error (and ``load_error`` for the requests that waited)."""
        note = progress or _nothing
        async with entry.lock:
            if entry.state == ModelState.READY:
                note("ready", {"device": entry.device_id})
                return
            entry.state, entry.error, entry.attempts = ModelState.LOADING, None, []
            entry.load_error = None
            started = time.monotonic()
            try:
                if entry.executor is None:
                    # One thread per model for loading and for every forward pass: torch's
                    # OpenMP teams are per thread, and a second thread computing on the same
                    # cores measured up to 1.7x slower per decode step here.
                    entry.executor = ThreadPoolExecutor(
                        1, thread_name_prefix=f"model-{entry.name}")
                run = asyncio.get_running_loop().run_in_executor
                async with self._load_lock:
                    entry.scheduled = False
                    note("resolving", {})
                    chain = await run(entry.executor, resolve, entry, self.cache_dir,
                                      self.memory_limits)
                    await self._make_room(entry, chain[0])
                    note("loading", {"device": chain[0].device_id,
                                     "estimated_bytes": entry.estimated_bytes})
                    before = footprint.process_bytes(), footprint.cuda_bytes(
                        chain[0].placement.device)
                    await run(entry.executor, load_on_chain, entry, chain)
                    measure(entry, before)
                self._start_worker(entry)
            except Exception as exc:
                self._failed(entry, exc)
                error = entry.load_error
                note("error", {"message": error.message, "code": error.code,
                               "type": error.type, "status": error.status,
                               "retry_after": error.headers.get("Retry-After")})
                return
            finally:
                entry.scheduled = False
            heap.settle()
            entry.last_used = time.monotonic()
            entry.state, entry.loaded_at = ModelState.READY, time.time()
            entry.ready_since = time.monotonic()
            seconds = time.monotonic() - started
            metrics.MODEL_READY.labels(entry.name).set(1)
            metrics.LOAD_SECONDS.labels(entry.name).observe(seconds)
            metrics.LOADS.labels(entry.name, "ready").inc()
            metrics.RESIDENT_BYTES.labels(entry.name).set(entry.resident_bytes)
            note("ready", {"device": entry.device_id, "seconds": round(seconds, 3),
                           "resident_bytes": entry.resident_bytes})
            where = entry.skill.placement
            log.info("model %s ready on %s (%s, %s) in %.1fs", entry.name,
                     entry.device_id or where.device, where.backend, where.dtype, seconds)

    def _failed(self, entry: ModelEntry, exc: Exception) -> None:
        entry.state = ModelState.FAILED
        entry.error = exc.message if isinstance(exc, HFServeError) else brief(exc)
        if isinstance(exc, MemoryExhausted):
            entry.load_error = exc          # room may come: not the model's fault
        else:
            entry.load_error = ModelUnavailable(
                f"model {entry.name!r} failed to load: {entry.error}")
            entry.breaker.failure()
        metrics.LOADS.labels(entry.name, "failed").inc()
        metrics.set_breaker(entry.name, entry.breaker.state.value)
        self._release_memory(entry)
        log.error("model %s failed to load: %s", entry.name, entry.error)

    async def _make_room(self, entry: ModelEntry, choice: Choice) -> None:
        """Unload least recently used idle models on the device until this one fits. When
        only busy models would make room, those resident for ``min_residency_s`` are
        drained (their requests in flight finish; new ones wait for the unload and load
        them again) and the load waits for the others: steady traffic to a busy model
        never leaves it idle, so waiting for idle would starve this load, and draining a
        model just loaded would evict it before the requests that waited for it ran."""
        others = [e for e in self.entries.values() if e is not entry]
        deadline = time.monotonic() + self.settings.load_timeout_s
        residency = self.settings.min_residency_s

        def drainable(victim: ModelEntry) -> bool:
            return time.monotonic() - victim.ready_since >= residency

        while True:
            try:
                victims = self.budget.evictions(entry, choice, others, drainable=drainable)
                break
            except MemoryExhausted:
                # Not pinned ones: busy models are ripe soon; wait for them.
                if time.monotonic() > deadline or not self.budget.evictions(
                        entry, choice, others, busy_too=True):
                    raise
                await asyncio.sleep(0.05)
        for victim in victims:
            log.info("evicting model %s to make room for %s", victim.name, entry.name)
            metrics.EVICTIONS.labels(victim.name).inc()
            victim.evictions += 1
            await self.unload(victim, drain_s=max(0.0, deadline - time.monotonic()))
        entry.device_id = choice.device_id
        entry.resident_bytes = entry.estimated_bytes or 0

    _new_skill = staticmethod(new_skill)

    def _start_worker(self, entry: ModelEntry) -> None:
        loop = asyncio.get_running_loop()
        start_worker(
            entry,
            lambda exc: loop.call_soon_threadsafe(self._replace_later, entry, exc),
            lambda reason: loop.call_soon_threadsafe(self._restart_later, entry, reason))

    def _replace_later(self, entry: ModelEntry, exc: BaseException) -> None:
        if entry.state == ModelState.READY and entry.device_id not in entry.excluded:
            entry.state = ModelState.LOADING   # 503 + Retry-After until it is back
            self._tasks.add(task := asyncio.create_task(self.replace(entry, exc)))
            task.add_done_callback(self._tasks.discard)

    def _restart_later(self, entry: ModelEntry, reason: str) -> None:
        """A model process ended on its own: load the model again, a few times at most."""
        if entry.state != ModelState.READY:
            return
        entry.breaker.failure()
        if not entry.restarts.allow():
            entry.state, entry.broken = ModelState.FAILED, True
            entry.error = (f"{reason}; restarted {entry.restarts.recent} times within "
                           f"{entry.restarts.window:.0f}s, not again")
            log.error("model %s: %s", entry.name, entry.error)
            metrics.MODEL_READY.labels(entry.name).set(0)
            return
        entry.state = ModelState.LOADING
        self._tasks.add(task := asyncio.create_task(self._restart(entry, reason)))
        task.add_done_callback(self._tasks.discard)

    async def _restart(self, entry: ModelEntry, reason: str) -> None:
        log.warning("model %s: %s; loading it again", entry.name, reason)
        await self.unload(entry)
        await self.load(entry)
        entry.attempts.insert(0, {"device": entry.device_id or "?", "error": reason})

    async def replace(self, entry: ModelEntry, exc: BaseException) -> None:
        """Out of memory at inference: move the model down its device chain."""
        failed = entry.device_id
        log.warning("model %s ran out of memory on %s; moving it", entry.name, failed)
        await self.unload(entry)
        if failed:
            entry.excluded.add(failed)
        await self.load(entry)
        entry.attempts.insert(0, {"device": failed or "?", "error": "out of memory while "
                                  f"serving: {brief(exc)}"})

    # --- unloading ------------------------------------------------------------------------
    async def unload(self, entry: ModelEntry, drain_s: float = 0.0) -> None:
        """Stop the model's worker and free its memory. With ``drain_s``, requests in
        flight (a running stream) may finish first, for that long at most."""
        async with entry.lock:
            loaded = entry.skill is not None or entry.batcher is not None \
                or entry.scheduler is not None
            if loaded:
                entry.state = ModelState.DRAINING
                deadline = time.monotonic() + drain_s
                while entry.busy and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            if entry.batcher is not None:
                await entry.batcher.stop()
            if entry.scheduler is not None:
                await asyncio.to_thread(entry.scheduler.stop)
            if entry.executor is not None:
                entry.executor.shutdown(wait=False)
            if entry.skill is not None:
                entry.skill.unload()
            device = entry.skill.placement.device if entry.skill is not None else None
            entry.batcher = entry.scheduler = entry.executor = entry.skill = None
            self._release_memory(entry)
            if loaded:
                heap.release()
                footprint.empty_device_cache(device)
            if entry.state != ModelState.UNSUPPORTED and not entry.broken:
                entry.state = ModelState.UNLOADED
            metrics.MODEL_READY.labels(entry.name).set(0)

    def _release_memory(self, entry: ModelEntry) -> None:
        entry.resident_bytes = 0
        metrics.RESIDENT_BYTES.labels(entry.name).set(0)

    async def load_all(self, names: list[str] | None = None) -> None:
        """Load the models named (default: all) one after another, at start-up."""
        entries = [e for e in self.entries.values()
                   if (names is None or e.name in names)
                   and e.state in (ModelState.UNLOADED, ModelState.FAILED)]
        for entry in entries:
            entry.scheduled = True
        for entry in entries:
            await self.load(entry)

    async def unload_idle(self, default_ttl: float | None) -> list[str]:
        """Unload every model unused for longer than its idle TTL; which it unloaded."""
        now, gone = time.monotonic(), []
        for entry in list(self.entries.values()):
            ttl = entry.config.idle_ttl_s or default_ttl
            if (ttl is not None and entry.state == ModelState.READY and not entry.busy
                    and not entry.pinned and now - entry.last_used > ttl):
                log.info("model %s idle for %.0fs; unloading it", entry.name, ttl)
                metrics.EVICTIONS.labels(entry.name).inc()
                entry.evictions += 1
                await self.unload(entry)
                gone.append(entry.name)
        return gone

    async def close(self) -> None:
        for entry in list(self.entries.values()):
            await self.unload(entry)
