"""The engine's use of the response cache for encoder work: each input's key (the model's
revision found once per load), the hits of a request, and the results of its misses
stored. A model forgotten takes its results with it."""

from __future__ import annotations

from typing import Any

from hfserve.runtime.caching import cache_keys
from hfserve.runtime.caching.response_cache import MISSING, ResponseCache, frozen
from hfserve.types import Task

Done = tuple[Any, int]          # an input's result and its token count


class CachedResults:
    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        # model -> (when it was loaded, its revision): the files are read once per load
        self._revisions: dict[str, tuple[float | None, str | None]] = {}

    def keys(self, entry: Any, task: Task, options: dict[str, Any],
             items: list[Any]) -> list[str | None] | None:
        """One key per input (None for one that is not cacheable), or None for none."""
        if not self.cache.enabled or entry.spec is None or entry.skill is None:
            return None
        revision = self._revision(entry)
        shared = None if revision is None else \
            cache_keys.prefix(entry.name, revision, task, options)
        if shared is None:
            return None
        return [cache_keys.item_key(shared, item) for item in items]

    def _revision(self, entry: Any) -> str | None:
        known = self._revisions.get(entry.name)
        if known is None or known[0] != entry.loaded_at:
            known = (entry.loaded_at, cache_keys.revision(entry.spec, entry.skill.placement))
            self._revisions[entry.name] = known
        return known[1]

    def lookup(self, model: str, keys: list[str | None] | None, count: int
               ) -> list[Done | None]:
        """Each input's cached result and cost, None where it has to run."""
        if keys is None:
            return [None] * count
        found: list[Done | None] = []
        for key in keys:
            value = MISSING if key is None else self.cache.get(key, model)
            found.append(None if value is MISSING else value)
        return found

    @staticmethod
    def pending(keys: list[str | None] | None, found: list[Done | None]
                ) -> tuple[list[int], list[tuple[int, int]]]:
        """The inputs to run (each key once), and (input, the input it repeats) for the
        others within the request."""
        first: dict[str, int] = {}
        run: list[int] = []
        repeats: list[tuple[int, int]] = []
        for i, hit in enumerate(found):
            if hit is not None:
                continue
            key = keys[i] if keys is not None else None
            if key is not None and key in first:
                repeats.append((i, first[key]))
                continue
            if key is not None:
                first[key] = i
            run.append(i)
        return run, repeats

    @staticmethod
    def copy(done: Done) -> Done:
        """A repeated input's own copy of the result of the one it repeats."""
        return frozen(done)

    def store(self, model: str, keys: list[str | None] | None, ran: list[int],
              done: list[Done | None]) -> None:
        if keys is None:
            return
        for i in ran:
            key, value = keys[i], done[i]
            if key is not None and value is not None:
                self.cache.put(key, value, model)

    def forget(self, model: str) -> None:
        self.cache.drop_model(model)
        self._revisions.pop(model, None)
