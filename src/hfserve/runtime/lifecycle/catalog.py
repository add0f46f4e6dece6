"""The models the server knows, by name: each model's entry, its aliases, a replicated
model's replicas (``runtime/routing/replicas.py``) and the companion entries that serve a
model's extra tasks, each with a skill of its own, and the LoRA adapters served on a
model under names of their own. The manager (``manager.py``) builds on it
to load and unload them."""

from __future__ import annotations

from hfserve import metrics
from hfserve.config import Settings
from hfserve.errors import InvalidRequest, ModelExists, ModelNotFound
from hfserve.model_config import ModelConfig
from hfserve.registry import adapter_paths
from hfserve.runtime.lifecycle.breaker import CircuitBreaker
from hfserve.runtime.lifecycle.entry import ModelEntry
from hfserve.runtime.routing import replicas
from hfserve.types import Task


class Catalog:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.entries: dict[str, ModelEntry] = {}
        self.aliases: dict[str, str] = {}
        # a replicated model's name (and aliases) -> the names of its replicas' entries
        self.pools: dict[str, list[str]] = {}
        # a model's served name -> its extra tasks -> the companion entry serving each
        self.companions: dict[str, dict[Task, str]] = {}
        # a LoRA adapter's name -> the served name of the model it runs on
        self.adapters: dict[str, str] = {}

    def add(self, mc: ModelConfig) -> ModelEntry:
        name = mc.served_name
        taken = [n for n in [name, *mc.aliases] if n in self.aliases or n in self.adapters]
        if taken:
            raise InvalidRequest(f"two models are named {taken[0]!r}; give one a name",
                                 param="name")
        s = self.settings
        entry = ModelEntry(config=mc, name=name,
                           breaker=CircuitBreaker(s.breaker_failures, s.breaker_open_s))
        self.entries[name] = entry
        metrics.set_breaker(name, entry.breaker.state.value)
        for alias in [name, *mc.aliases]:
            self.aliases[alias] = name
        return entry

    def add_replicated(self, mc: ModelConfig) -> list[ModelEntry]:
        """The model, or each of its replicas (``runtime/routing/replicas.py``) under its name,
        and a companion entry for each of its extra ``tasks``."""
        if mc.adapters:
            mc = mc.model_copy(update={"adapters": adapter_paths.resolve_all(
                mc.adapters, self.settings.roots())})
        entries = self._add_copies(mc)
        for entry in entries:
            entry.extra_tasks = tuple(mc.tasks)
        for adapter in mc.adapters:
            self.add_adapter_name(adapter, mc.served_name)
        return [*entries, *self._add_companions(mc)]

    def add_adapter_name(self, adapter: str, model: str) -> None:
        """Route requests for ``adapter`` to ``model``; names are unique among models and
        adapters alike, so that a bare adapter name says which model it runs on."""
        if adapter in self.aliases or adapter in self.pools or adapter in self.adapters:
            raise ModelExists(f"a model or adapter named {adapter!r} exists already",
                              param="name")
        self.adapters[adapter] = model

    def adapter_route(self, name: str) -> tuple[str, str] | None:
        """``(model, adapter)`` when ``name`` asks for a LoRA adapter, as ``ADAPTER`` or
        ``MODEL:ADAPTER``; None for a model's own name (a model may be named with a colon).
        ``MODEL:ADAPTER`` for an adapter ``MODEL`` does not serve is a 404."""
        if name in self.aliases or name in self.pools:
            return None
        model = self.adapters.get(name)
        if model is not None:
            return model, name
        base, colon, adapter = name.rpartition(":")
        model = self.served_name(base) if colon else None
        if model is None:
            return None
        if self.adapters.get(adapter) != model:
            raise ModelNotFound(f"model {model!r} has no adapter {adapter!r}", param="model")
        return model, adapter

    def _add_companions(self, mc: ModelConfig) -> list[ModelEntry]:
        """One entry per extra task, ``NAME#TASK``, loading a skill of that task: a model
        whose one skill does not do every task it is asked for (a BERT's embeddings and its
        fill-mask head) is served by two skills under one name."""
        name, out = mc.served_name, []
        for task in dict.fromkeys(mc.tasks):
            companion = mc.model_copy(update={
                "name": f"{name}#{task.value}", "aliases": [], "task": task, "tasks": [],
                "adapters": {},
                "replicas": 1, "devices": None, "companion_of": name})
            out.append(self.add(companion))
            self.companions.setdefault(name, {})[task] = companion.name
        return out

    def _add_copies(self, mc: ModelConfig) -> list[ModelEntry]:
        copies = replicas.expand(mc)
        if copies == [mc]:
            return [self.add(mc)]
        names = [mc.served_name, *mc.aliases]
        taken = [n for n in names if n in self.aliases or n in self.pools]
        if taken:
            raise InvalidRequest(f"two models are named {taken[0]!r}; give one a name",
                                 param="name")
        entries = [self.add(c) for c in copies]
        for name in names:
            self.pools[name] = [e.name for e in entries]
        return entries

    def served_name(self, name: str) -> str | None:
        """The name ``name`` stands for: a model's served name, a replicated model's
        name, or None."""
        pool = self.pools.get(name)
        if pool is not None:
            return self.entries[pool[0]].public
        return self.aliases.get(name)

    def forget(self, entry: ModelEntry) -> None:
        for adapter, model in list(self.adapters.items()):
            if entry.config.companion_of is None and model == entry.public:
                del self.adapters[adapter]
        self.entries.pop(entry.name, None)
        for alias in [entry.name, *entry.config.aliases]:
            self.aliases.pop(alias, None)
        metrics.forget_model(entry.name)

    def entry(self, name: str) -> ModelEntry:
        key = self.aliases.get(name)
        if key is None:
            raise ModelNotFound.named(name)
        return self.entries[key]

