"""Dynamic batcher for encoder work: one per model. Items wait in a bounded queue; a single
asyncio task forms batches (see batching.py) and runs them on the model's own worker thread,
so tokenization of the next requests (done before queueing) overlaps the forward pass.
Every item carries its own future; a failing batch is retried item by item so one bad
input fails only itself.

A skill may run ``workers`` batches at once (each from a thread of the executor). While all
of them are busy, one more *full* batch is handed over to run next, so a worker starts it the
moment it is free instead of waiting for this event loop, which under load is busy with
HTTP. A part batch keeps gathering until a worker is free, so this never makes batches
smaller. Priorities apply to what is queued (a handed-over batch is in flight); deadlines
are checked again when a batch starts, so an item that expired while it waited never runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hfserve import metrics
from hfserve.errors import (
    DeviceOutOfMemory,
    HFServeError,
    ModelError,
)
from hfserve.runtime import admission
from hfserve.runtime.batching.selection import Pending, full, ready, select_batch


class Batcher:
    def __init__(self, name: str, run_batch: Callable[[list[Any]], list[Any]], *,
                 max_batch_size: int, max_batch_tokens: int, max_wait: float, max_queue: int,
                 executor: ThreadPoolExecutor, workers: int = 1,
                 clock: Callable[[], float] = time.monotonic,
                 is_out_of_memory: Callable[[BaseException], bool] = lambda exc: False,
                 on_out_of_memory: Callable[[BaseException], None] = lambda exc: None) -> None:
        self.name = name
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.executor = executor
        self.workers = workers
        self.clock = clock
        self.is_out_of_memory = is_out_of_memory
        self.on_out_of_memory = on_out_of_memory
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._in_flight: dict[asyncio.Task, list[Pending]] = {}
        self.alive = True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        self._task.add_done_callback(self._on_exit)

    def _on_exit(self, task: asyncio.Task) -> None:
        # The loop only ends when stopped; anything else marks the model as not running.
        self.alive = False

    async def stop(self) -> None:
        unfinished = [p for batch in self._in_flight.values() for p in batch]
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for item in [*unfinished, *self._queue]:
            if not item.future.done():
                item.future.set_exception(ModelError("model was unloaded"))
        self._queue.clear()
        self._in_flight.clear()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Batches handed to the workers (running or next in line)."""
        return len(self._in_flight)

    async def submit(self, payloads: list[Any], costs: list[int], *, priority: int = 1,
                     deadline: float | None = None) -> list[Any]:
        """Queue items (all or none) and wait for their results, in order."""
        if not self._make_room(len(payloads), priority):
            raise admission.refused(self.name, len(self._queue))
        loop = asyncio.get_running_loop()
        now = self.clock()
        items = [Pending(cost=c, arrival=now, payload=p, priority=priority, deadline=deadline,
                         future=loop.create_future()) for p, c in zip(payloads, costs,
                                                                        strict=True)]
        self._queue.extend(items)
        self._queue.sort(key=lambda p: p.priority)  # stable: arrival order within a priority
        metrics.QUEUE_DEPTH.labels(self.name).set(len(self._queue))
        self._wake.set()
        try:
            if len(items) == 1:   # most requests: gather's bookkeeping costs more than this
                return [await items[0].future]
            return list(await asyncio.gather(*(p.future for p in items)))
        except (asyncio.CancelledError, HFServeError):
            for p in items:  # a client that left (or was shed) frees its places
                if p in self._queue:
                    self._queue.remove(p)
            raise

    def _make_room(self, needed: int, priority: int) -> bool:
        """Under pressure, lower-priority work is shed first (newest first) to admit
        ``needed`` items of ``priority``; False when the queue holds nothing to shed."""
        while len(self._queue) + needed > self.max_queue:
            worst = admission.victim(self._queue, priority, lambda p: (p.priority, p.arrival))
            if worst is None:
                return False
            self._queue.remove(worst)
            error = admission.shed(self.name)
            if not worst.future.done():
                worst.future.set_exception(error)
        return True

    async def _loop(self) -> None:
        limits = dict(max_batch_size=self.max_batch_size, max_batch_tokens=self.max_batch_tokens)
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and len(self._in_flight) <= self.workers:
                if len(self._in_flight) == self.workers:
                    if not full(self._queue, **limits):
                        break       # gather on; a finished batch or a new item wakes us
                elif not ready(self._queue, self.clock(), max_wait=self.max_wait, **limits):
                    await self._wait_to_fill()
                    continue
                self._drop_expired()
                batch = select_batch(self._queue, **limits)
                for p in batch:
                    self._queue.remove(p)
                metrics.QUEUE_DEPTH.labels(self.name).set(len(self._queue))
                if batch:
                    task = asyncio.get_running_loop().create_task(self._run(batch))
                    self._in_flight[task] = batch
                    task.add_done_callback(self._batch_done)

    async def _wait_to_fill(self) -> None:
        """Until the oldest item has waited ``max_wait`` or something is queued."""
        oldest = min(p.arrival for p in self._queue)
        delay = max(0.0, oldest + self.max_wait - self.clock())
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=delay or 1e-4)
        except TimeoutError:
            pass
        self._wake.clear()

    def _batch_done(self, task: asyncio.Task) -> None:
        self._in_flight.pop(task, None)
        self._wake.set()

    def _drop_expired(self) -> None:
        now = self.clock()
        for p in [p for p in self._queue if self._expired(p, now)]:
            self._queue.remove(p)
            self._expire(p)

    @staticmethod
    def _expired(p: Pending, now: float) -> bool:
        return admission.past(p.deadline, now)

    def _expire(self, p: Pending) -> None:
        error = admission.expired(self.name)
        if not p.future.done():
            p.future.set_exception(error)

    def _run_live(self, batch: list[Pending]) -> tuple[list[Pending], list[Any]]:
        """On the worker: run the items whose deadline has not passed (a handed-over batch
        may have waited behind another)."""
        now = self.clock()
        live = [p for p in batch if not self._expired(p, now)]
        return live, (self.run_batch([p.payload for p in live]) if live else [])

    async def _run(self, batch: list[Pending]) -> None:
        metrics.BATCH_SIZE.labels(self.name).observe(len(batch))
        loop = asyncio.get_running_loop()
        try:
            live, results = await loop.run_in_executor(self.executor, self._run_live, batch)
        except Exception as exc:
            if self.is_out_of_memory(exc):
                # Not the input's fault: fail the batch retryably and let the model move.
                self.alive = False
                self.on_out_of_memory(exc)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(DeviceOutOfMemory(
                            f"model {self.name!r} ran out of device memory and is being "
                            "moved; retry shortly"))
                return
            if len(batch) > 1:
                for p in batch:  # isolate the failing item
                    await self._run([p])
                return
            error = exc if isinstance(exc, HFServeError) else ModelError(
                f"model failed: {type(exc).__name__}: {exc}")
            if not batch[0].future.done():
                batch[0].future.set_exception(error)
            return
        ran = set(live)
        for p in batch:
            if p not in ran:
                self._expire(p)
        for p, result in zip(live, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)
