"""ModelManager: owns every served model's lifecycle (spec -> placement -> loaded skill ->
worker), one lock per model, and answers which model serves a request."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfserve import metrics
from hfserve.config import ModelConfig
from hfserve.errors import (
    HFServeError,
    InvalidRequest,
    ModelLoading,
    ModelNotFound,
    ModelUnavailable,
    UnsupportedTask,
    public,
)
from hfserve.hardware import table as compatibility_table
from hfserve.registry import build_spec
from hfserve.registry.skills import skill_targets
from hfserve.runtime import heap
from hfserve.runtime.batcher import Batcher
from hfserve.runtime.pipeline_worker import PipelineWorker
from hfserve.runtime.placement import choices
from hfserve.runtime.restarts import RestartBudget
from hfserve.runtime.scheduler import Scheduler
from hfserve.runtime.worker_process import ProcessGenerator
from hfserve.skills.base import BatchSkill, GenerativeSkill, PipelineSkill, Skill
from hfserve.types import Family, ModelSpec, ModelState, Task

log = logging.getLogger("hfserve.manager")


def compatibility_row(family: Family) -> dict[str, str]:
    """Which device kinds run this family: full, partial or none."""
    return compatibility_table().get(family.value, {})


def skill_classes(task: Task) -> list[type[Skill]]:
    """The skills registered for ``task``, in preference order."""
    targets = skill_targets(task)
    if not targets:
        raise UnsupportedTask(f"no skill serves task {task.value!r} yet", param="model")
    classes = []
    for target in targets:
        module, _, name = target.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


@dataclass
class ModelEntry:
    config: ModelConfig
    name: str
    spec: ModelSpec | None = None
    state: ModelState = ModelState.PENDING
    skill: Skill | None = None
    batcher: Batcher | None = None
    scheduler: Scheduler | None = None
    executor: ThreadPoolExecutor | None = None
    error: str | None = None
    device_id: str | None = None
    placement_reason: str | None = None
    attempts: list[dict[str, str]] = field(default_factory=list)
    loaded_at: float | None = None
    scheduled: bool = False              # queued for start-up loading
    excluded: set[str] = field(default_factory=set)   # devices that failed this model
    restarts: RestartBudget = field(default_factory=RestartBudget)
    # Failed while serving and not loaded again (its restart budget is spent): liveness
    # reports it, so that an orchestrator restarts the server.
    broken: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def served_tasks(self) -> tuple[Task, ...]:
        """What requests this model takes: the tasks of its config that the loaded skill
        serves (before loading: those some registered skill serves). A causal LM's config
        also lists feature extraction, which its generation skill does not do."""
        if self.spec is None:
            return ()
        if self.skill is not None:
            return tuple(t for t in self.spec.tasks if t in self.skill.tasks)
        return tuple(t for t in self.spec.tasks if skill_targets(t))

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        info: dict[str, Any] = {"state": self.state.value, "source": self.config.source,
                                "error": self.error}
        if spec is not None:
            info.update(architecture=spec.architecture, model_type=spec.model_type,
                        family=spec.family.value, task=spec.task.value,
                        tasks=[t.value for t in self.served_tasks()],
                        parameters=spec.parameters,
                        max_context=spec.max_context, gguf_file=spec.gguf_file)
            info["compatibility"] = compatibility_row(spec.family)
        if self.skill is not None and self.state == ModelState.READY:
            info.update(self.skill.info(), device=self.device_id)
        info["placement_reason"] = self.placement_reason
        info["placement_attempts"] = self.attempts
        return info


class ModelManager:
    def __init__(self, configs: list[ModelConfig], cache_dir: Path | None = None,
                 memory_limits: dict[str, int] | None = None) -> None:
        self.cache_dir = cache_dir or Path.home() / ".cache" / "hfserve"
        self.memory_limits = memory_limits or {}
        self.entries: dict[str, ModelEntry] = {}
        self.aliases: dict[str, str] = {}
        # One load at a time: loads compete for the same cores and memory, and the first
        # import of transformers from two threads at once is not safe.
        self._load_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        for mc in configs:
            self.add(mc)

    def add(self, mc: ModelConfig) -> ModelEntry:
        name = mc.served_name
        if name in self.aliases:
            raise InvalidRequest(f"two models are named {name!r}; give one a name",
                                 param="name")
        entry = ModelEntry(config=mc, name=name)
        self.entries[name] = entry
        for alias in [name, *mc.aliases]:
            self.aliases[alias] = name
        return entry

    def entry(self, name: str) -> ModelEntry:
        key = self.aliases.get(name)
        if key is None:
            raise ModelNotFound(f"model {name!r} does not exist", param="model")
        return self.entries[key]

    async def ready(self, name: str, task: Task | None) -> ModelEntry:
        """The entry serving ``name`` (for ``task``; None: any) once loaded; loads on demand;
        typed errors otherwise."""
        entry = self.entry(name)
        if entry.state == ModelState.LOADING or (entry.state == ModelState.PENDING
                                                  and entry.scheduled):
            raise ModelLoading(f"model {name!r} is loading; retry shortly")
        if entry.state in (ModelState.PENDING, ModelState.UNLOADED):
            await self.load(entry)
        if entry.state == ModelState.FAILED:
            raise ModelUnavailable(f"model {name!r} failed to load: {entry.error}")
        served = entry.served_tasks()
        if task is not None and task not in served:
            raise UnsupportedTask(
                f"model {name!r} serves {', '.join(t.value for t in served) or 'nothing'}, "
                f"not {task.value}", param="model")
        worker = entry.batcher or entry.scheduler
        if worker is None or not worker.alive:
            raise ModelUnavailable(f"model {name!r} is not running")
        return entry

    async def load(self, entry: ModelEntry) -> None:
        async with entry.lock:
            if entry.state == ModelState.READY:
                return
            entry.state, entry.error, entry.attempts = ModelState.LOADING, None, []
            entry.scheduled = False
            started = time.monotonic()
            try:
                if entry.executor is None:
                    # One thread per model for loading and for every forward pass: torch's
                    # OpenMP teams are per thread, and a second thread computing on the same
                    # cores measured up to 1.7x slower per decode step here.
                    entry.executor = ThreadPoolExecutor(
                        1, thread_name_prefix=f"model-{entry.name}")
                async with self._load_lock:
                    await asyncio.get_running_loop().run_in_executor(
                        entry.executor, self._load_blocking, entry)
                self._start_worker(entry)
            except Exception as exc:
                entry.state = ModelState.FAILED
                entry.error = exc.message if isinstance(exc, HFServeError) else _brief(exc)
                log.error("model %s failed to load: %s", entry.name, entry.error)
                return
            heap.settle()
            entry.state, entry.loaded_at = ModelState.READY, time.time()
            metrics.MODEL_READY.labels(entry.name).set(1)
            metrics.LOAD_SECONDS.labels(entry.name).observe(time.monotonic() - started)
            log.info("model %s ready on %s in %.1fs", entry.name, entry.skill.placement.device,
                     time.monotonic() - started)

    def _load_blocking(self, entry: ModelEntry) -> None:
        """Resolve, place and load, falling down the device chain on failure."""
        if entry.spec is None:
            entry.spec = build_spec(entry.config)
        classes = skill_classes(entry.spec.task)
        for choice in choices(entry.spec, entry.config, classes, self.cache_dir,
                              exclude=frozenset(entry.excluded),
                              memory_limits=self.memory_limits):
            cls = next(c for c in classes if choice.placement.backend in c.backends)
            skill = self._new_skill(cls, entry, choice.device_id)
            try:
                skill.placement = choice.placement
                skill.worker_init()
                skill.load(choice.placement)
            except Exception as exc:  # fall back to the next device, remember why
                entry.attempts.append({"device": choice.device_id, "backend":
                                       choice.placement.backend, "error": _brief(exc)})
                log.warning("model %s failed on %s: %s", entry.name, choice.device_id, exc)
                skill.unload()
                continue
            entry.skill = skill
            entry.device_id = choice.device_id
            entry.placement_reason = choice.reason
            return
        tried = "; ".join(f"{a['device']}: {a['error']}" for a in entry.attempts)
        raise ModelUnavailable(f"no device could load the model ({tried})")

    @staticmethod
    def _new_skill(cls: type[Skill], entry: ModelEntry, device_id: str) -> Skill:
        """The skill, or its stand-in in a model process. By default generation gets a
        process of its own on accelerators, where the loop is Python launching kernels
        and the cores are free; on the CPU the model's threads need the cores, and on two
        of them a second process measured slower (docs/benchmarks.md)."""
        mc = entry.config
        generative = issubclass(cls, GenerativeSkill | PipelineSkill)
        on_cpu = device_id.lower().endswith("cpu")
        default = cls.own_process and not on_cpu
        if generative and (default if mc.own_process is None else mc.own_process):
            return ProcessGenerator(entry.spec, cls, max_concurrent=mc.max_concurrent,
                                    max_queue=mc.max_queue)
        return cls(entry.spec)

    def _start_worker(self, entry: ModelEntry) -> None:
        mc, skill = entry.config, entry.skill
        loop = asyncio.get_running_loop()

        def out_of_memory(exc: BaseException) -> None:  # from any thread
            loop.call_soon_threadsafe(self._replace_later, entry, exc)

        if isinstance(skill, ProcessGenerator):
            def exited(reason: str) -> None:  # from the worker's reader thread
                loop.call_soon_threadsafe(self._restart_later, entry, reason)

            entry.scheduler = skill.worker(entry.name, on_out_of_memory=out_of_memory,
                                           on_exit=exited)
            return
        workers = {GenerativeSkill: Scheduler, PipelineSkill: PipelineWorker}
        kind = next((w for base, w in workers.items() if isinstance(skill, base)), None)
        if kind is not None:
            entry.scheduler = kind(entry.name, skill, max_concurrent=mc.max_concurrent,
                                   max_queue=mc.max_queue, on_out_of_memory=out_of_memory,
                                   executor=entry.executor)
        elif isinstance(skill, BatchSkill):
            if skill.workers > 1:   # batches from several threads at once (see skill.workers)
                entry.executor.shutdown(wait=False)
                entry.executor = ThreadPoolExecutor(skill.workers,
                                                    thread_name_prefix=f"model-{entry.name}")
            entry.batcher = Batcher(entry.name, skill.run_batch, workers=skill.workers,
                                    max_batch_size=mc.max_batch_size,
                                    max_batch_tokens=mc.max_batch_tokens,
                                    max_wait=mc.max_wait_ms / 1000, max_queue=mc.max_queue,
                                    executor=entry.executor,
                                    is_out_of_memory=skill.is_out_of_memory,
                                    on_out_of_memory=out_of_memory)
            entry.batcher.start()
        else:
            raise ModelUnavailable(f"skill {type(skill).__name__} has no runtime worker")

    def _replace_later(self, entry: ModelEntry, exc: BaseException) -> None:
        if entry.state == ModelState.READY and entry.device_id not in entry.excluded:
            entry.state = ModelState.LOADING   # 503 + Retry-After until it is back
            self._tasks.add(task := asyncio.create_task(self.replace(entry, exc)))
            task.add_done_callback(self._tasks.discard)

    def _restart_later(self, entry: ModelEntry, reason: str) -> None:
        """A model process ended on its own: load the model again, a few times at most."""
        if entry.state != ModelState.READY:
            return
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
                                  f"serving: {_brief(exc)}"})

    async def unload(self, entry: ModelEntry) -> None:
        async with entry.lock:
            if entry.batcher is not None:
                await entry.batcher.stop()
            if entry.scheduler is not None:
                await asyncio.to_thread(entry.scheduler.stop)
            if entry.executor is not None:
                entry.executor.shutdown(wait=False)
            if entry.skill is not None:
                entry.skill.unload()
            entry.batcher = entry.scheduler = entry.executor = entry.skill = None
            heap.release()
            entry.state = ModelState.UNLOADED
            metrics.MODEL_READY.labels(entry.name).set(0)

    async def load_all(self) -> None:
        entries = list(self.entries.values())
        for entry in entries:
            entry.scheduled = entry.state == ModelState.PENDING
        for entry in entries:
            await self.load(entry)

    async def close(self) -> None:
        for entry in list(self.entries.values()):
            await self.unload(entry)


def _brief(exc: BaseException) -> str:
    """First line of an exception, short enough for a status field and free of paths."""
    return f"{type(exc).__name__}: {public(str(exc), 300)}"
