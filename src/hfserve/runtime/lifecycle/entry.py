"""One known model as the manager keeps it: its config, state, loaded skill and worker,
what it holds in memory, when it was last used, and its breaker and restart budget."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hfserve import metrics
from hfserve.errors import HFServeError, MemoryExhausted, public
from hfserve.hardware import table as compatibility_table
from hfserve.model_config import ModelConfig
from hfserve.registry.skills import skill_targets
from hfserve.runtime.batching.batcher import Batcher
from hfserve.runtime.generation.scheduler import Scheduler
from hfserve.runtime.lifecycle.breaker import BreakerState, CircuitBreaker
from hfserve.runtime.lifecycle.restarts import RestartBudget
from hfserve.skills.base import Skill
from hfserve.types import Family, ModelSpec, ModelState, Task


def compatibility_row(family: Family) -> dict[str, str]:
    """Which device kinds run this family: full, partial or none."""
    return compatibility_table().get(family.value, {})


def brief(exc: BaseException) -> str:
    """First line of an exception, short enough for a status field and free of paths."""
    return f"{type(exc).__name__}: {public(str(exc), 300)}"


@dataclass
class ModelEntry:
    config: ModelConfig
    name: str
    spec: ModelSpec | None = None
    state: ModelState = ModelState.UNLOADED
    skill: Skill | None = None
    batcher: Batcher | None = None
    scheduler: Scheduler | None = None
    executor: ThreadPoolExecutor | None = None
    error: str | None = None
    device_id: str | None = None
    placement_reason: str | None = None
    attempts: list[dict[str, str]] = field(default_factory=list)
    loaded_at: float | None = None
    ready_since: float = 0.0              # monotonic time of the last load's end
    scheduled: bool = False              # queued for start-up loading
    excluded: set[str] = field(default_factory=set)   # devices that failed this model
    restarts: RestartBudget = field(default_factory=RestartBudget)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    # Failed while serving and not loaded again (its restart budget is spent): liveness
    # reports it, so that an orchestrator restarts the server.
    broken: bool = False
    # A configured model that failed and was let go (skip_unservable_models): readiness
    # does not wait for it.
    skipped: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loading: asyncio.Task | None = None   # the one load every waiting request shares
    load_error: HFServeError | None = None  # what the requests that waited on it get
    busy: int = 0                         # requests in flight
    last_used: float = field(default_factory=time.monotonic)
    estimated_bytes: int | None = None
    measured_bytes: int | None = None     # the delta seen at the last load
    resident_bytes: int = 0               # what the residency budget counts while loaded
    evictions: int = 0                    # unloaded to make room, or for idling
    # tasks served under this model's name by companion entries (its config's ``tasks``)
    extra_tasks: tuple[Task, ...] = ()

    def __setattr__(self, key: str, value: Any) -> None:
        object.__setattr__(self, key, value)
        if key == "state":               # the state gauge follows every change
            metrics.set_state(self.name, value.value)

    @property
    def public(self) -> str:
        """The name clients use: the model's, for one of its replicas."""
        return self.config.replica_of or self.config.companion_of or self.name

    @property
    def load(self) -> int:
        """Work on it now: requests queued and in flight (for choosing a replica)."""
        worker = self.batcher or self.scheduler
        return self.busy + (worker.queue_depth if worker is not None else 0)

    @property
    def pinned(self) -> bool:
        return self.config.pinned

    def holds_readiness(self) -> bool:
        """Whether this model keeps /ready at 503: it is loading at start-up (or being
        restarted or moved), it is a configured model that failed (and was not let go with
        skip_unservable_models), its breaker is open, or its worker died. A model unloaded
        (it loads on demand), loading on demand, draining or unsupported does not."""
        if self.scheduled or (self.state == ModelState.LOADING and self.loading is None):
            return True
        if self.state == ModelState.FAILED:
            # No room now is not a broken model: it loads once room is made.
            return not (self.skipped or self.config.discovered
                        or isinstance(self.load_error, MemoryExhausted))
        if self.breaker.state == BreakerState.OPEN:
            return True
        if self.state == ModelState.READY:
            worker = self.batcher or self.scheduler
            return worker is None or not worker.alive
        return False

    def served_tasks(self) -> tuple[Task, ...]:
        """What requests this model takes: the tasks of its config that the loaded skill
        serves (before loading: those some registered skill serves). A causal LM's config
        also lists feature extraction, which its generation skill does not do."""
        if self.spec is None:
            return ()
        if self.skill is not None:
            own = tuple(t for t in self.spec.tasks if t in self.skill.tasks)
        else:
            own = tuple(t for t in self.spec.tasks if skill_targets(t))
        return own + tuple(t for t in self.extra_tasks if t not in own)

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        info: dict[str, Any] = {"state": self.state.value, "source": self.config.source,
                                "error": self.error, "pinned": self.pinned,
                                "resident_bytes": self.resident_bytes,
                                "estimated_bytes": self.estimated_bytes,
                                "measured_bytes": self.measured_bytes,
                                "in_flight": self.busy, "evictions": self.evictions,
                                "breaker": self.breaker.state.value}
        if self.config.replica_of is not None:
            info["replica_of"] = self.config.replica_of
        if self.config.companion_of is not None:
            info["companion_of"] = self.config.companion_of
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
