"""Model groups: a name standing for several models of one task, each request routed to one
of them by the group's bandit (runtime/routing/bandit.py), and ``auto``, the group of a task. Each
request served by a group is remembered (a bounded number) so that feedback on its response
reaches the arm that served it."""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hfserve.access_config import GroupConfig
from hfserve.errors import InvalidRequest, ModelNotFound
from hfserve.runtime.routing.bandit import Bandit, Reward, Trial
from hfserve.types import Task

AUTO = "auto"
REMEMBERED = 10_000          # responses feedback may still name


@dataclass(frozen=True)
class Pick:
    """The model a request goes to; ``trial`` set when a group chose it."""

    model: str
    group: str | None = None
    trial: Trial | None = None


class Groups:
    def __init__(self, configs: Iterable[GroupConfig], served: Callable[[str], str | None],
                 rng: random.Random | None = None) -> None:
        """``served``: the served name a model name stands for, None when none is."""
        self.configs = {g.name: g for g in configs}
        self.bandits: dict[str, Bandit] = {}
        for g in self.configs.values():
            if served(g.name) is not None:
                raise ValueError(f"group {g.name!r}: a model is served under that name")
            unknown = [m for m in g.models if served(m) is None]
            if unknown:
                raise ValueError(f"group {g.name!r}: no model is served as "
                                 f"{', '.join(unknown)}")
            names = [served(m) or m for m in g.models]
            weights = None if g.weights is None else \
                {served(m) or m: w for m, w in g.weights.items()}
            self.bandits[g.name] = Bandit.of(
                names, weights=weights, prior=(g.prior_alpha, g.prior_beta),
                reward=Reward(None if g.latency_target_ms is None
                              else g.latency_target_ms / 1000, g.latency_weight,
                              g.feedback_weight), rng=rng or random.Random())
        self._served: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def group_of(self, name: str, task: Task | None) -> str | None:
        """The group ``name`` stands for on a route of ``task``: its own name, or ``auto``
        for the first group of that task."""
        if name in self.configs:
            return name
        if name == AUTO and task is not None:
            return next((g.name for g in self.configs.values() if g.task == task), None)
        return None

    def pick(self, name: str, task: Task | None, available: Callable[[str], bool]) -> Pick:
        group = self.group_of(name, task)
        if group is None:
            if name == AUTO and task is not None:
                raise ModelNotFound(f"no group serves {task.value}, so `auto` names no model",
                                    param="model")
            return Pick(name)
        if task is not None and self.configs[group].task != task:
            raise InvalidRequest(f"group {group!r} serves {self.configs[group].task.value}, "
                                 f"not {task.value}", param="model")
        bandit = self.bandits[group]
        trial = bandit.start([a for a in bandit.arms if available(a)])
        return Pick(trial.arm, group, trial)

    def finish(self, pick: Pick, ok: bool) -> None:
        if pick.group is not None and pick.trial is not None:
            self.bandits[pick.group].finish(pick.trial, ok)

    def remember(self, response_ids: Iterable[str], pick: Pick) -> None:
        if pick.group is None:
            return
        for rid in response_ids:
            self._served[rid] = (pick.group, pick.model)
            self._served.move_to_end(rid)
        while len(self._served) > REMEMBERED:
            self._served.popitem(last=False)

    def feedback(self, response_id: str, score: float) -> dict[str, Any]:
        """Credit the arm that served ``response_id`` (an X-Request-Id, or a response's
        ``id`` such as chatcmpl-...) with ``score`` in [0, 1]."""
        served = self._served.get(response_id) or \
            self._served.get(response_id.rsplit("-", 1)[-1])
        if served is None:
            raise ModelNotFound(f"no response {response_id!r} served by a group is known "
                                "(feedback names a recent response of a group)",
                                param="id", code="response_not_found")
        group, model = served
        self.bandits[group].feedback(model, score)
        return {"id": response_id, "group": group, "model": model}

    def describe(self, name: str) -> dict[str, Any]:
        if name not in self.configs:
            raise ModelNotFound(f"group {name!r} not found", param="id")
        g = self.configs[name]
        return {"id": name, "object": "group", "task": g.task.value,
                "models": list(self.bandits[name].arms), **self.bandits[name].describe()}

    def listed(self) -> list[dict[str, Any]]:
        """The groups as /v1/models lists them, beside the models."""
        return [{"id": g.name, "object": "model", "owned_by": "hfserve", "group": True,
                 "task": g.task.value, "tasks": [g.task.value],
                 "models": list(self.bandits[g.name].arms)} for g in self.configs.values()]
