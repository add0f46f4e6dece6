"""What the engine tells about itself through the seam: the models and groups it serves and
each one's card, readiness and liveness, breakers, and the hardware it found. A part of
``Engine`` (its manager, groups, settings and drain flag)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hfserve.runtime.lifecycle.breaker import BreakerState
from hfserve.types import Task

if TYPE_CHECKING:
    from hfserve.config import Settings
    from hfserve.runtime.lifecycle.manager import ModelManager
    from hfserve.runtime.routing.groups import Groups

UNKNOWN_MODEL = "unknown"


class Introspection:
    manager: ModelManager
    groups: Groups
    settings: Settings
    draining: bool

    def models(self) -> list[dict[str, Any]]:
        return [*(self.describe(name) for name in self.manager.entries),
                *(self.describe(name) for name in self.manager.adapters),
                *self.groups.listed()]

    def label_of(self, name: str) -> str:
        """The served name ``name`` stands for (a model's or a group's, both fixed by the
        configuration), or one fixed label for names not served."""
        if name in self.groups.configs:
            return name
        if name in self.manager.adapters:      # an adapter's traffic is its model's
            return self.manager.adapters[name]
        return self.manager.aliases.get(name, UNKNOWN_MODEL)

    def group(self, name: str) -> dict[str, Any]:
        """A group's arms: each one's posterior, requests and traffic share."""
        return self.groups.describe(name)

    def feedback(self, response_id: str, score: float) -> dict[str, Any]:
        return self.groups.feedback(response_id, score)

    def describe(self, name: str) -> dict[str, Any]:
        if name in self.groups.configs:
            return next(g for g in self.groups.listed() if g["id"] == name)
        if name in self.manager.adapters:
            return self._adapter_card(name)
        entry = self.manager.entry(name)
        info = entry.describe()
        worker = entry.batcher or entry.scheduler
        info.update(id=entry.name, aliases=entry.config.aliases,
                    created=int(entry.loaded_at or 0),
                    queue_depth=worker.queue_depth if worker else 0,
                    limits={"max_queue": entry.config.max_queue,
                            "max_batch_size": entry.config.max_batch_size,
                            "max_batch_tokens": entry.config.max_batch_tokens,
                            "max_request_items": self.settings.max_request_items,
                            "max_request_sequences": self.settings.max_request_sequences})
        return info

    def _adapter_card(self, name: str) -> dict[str, Any]:
        """A LoRA adapter as vLLM lists one: its own id and ``parent``, the model it runs
        on (not vLLM's ``root``, the adapter's path: paths stay on the server)."""
        parent = self.manager.adapters[name]
        entry = self.manager.entry(parent)
        return {"id": name, "parent": parent, "adapter": "lora",
                "created": int(entry.loaded_at or 0), "state": entry.state.value,
                "task": Task.TEXT_GENERATION.value}

    def hardware(self) -> dict[str, Any]:
        """Detected devices, why the missing kinds are missing, and the compatibility table."""
        from hfserve.hardware import absent_kinds, detect, probe_errors, table

        return {"devices": [d.to_dict() for d in detect()], "unavailable": probe_errors(),
                "absent": absent_kinds(), "compatibility": table()}

    def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether every model that should serve does (see ``ModelEntry.holds_readiness``),
        and each known model's state."""
        states = {name: e.state.value for name, e in self.manager.entries.items()}
        ok = not self.draining and not any(e.holds_readiness()
                                           for e in self.manager.entries.values())
        return ok, states

    def breakers(self) -> dict[str, str]:
        """The models whose breaker is not closed, and its state."""
        return {name: e.breaker.state.value for name, e in self.manager.entries.items()
                if e.breaker.state != BreakerState.CLOSED}

    def broken(self) -> dict[str, str]:
        """Models that failed while serving and will not be loaded again by this process
        (liveness reports them: a restart of the server is what can bring them back)."""
        return {name: e.error or "failed" for name, e in self.manager.entries.items()
                if e.broken}
