"""The encoder batcher (runtime/batching/batcher.py) with a plain-function model on a real
worker."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import pytest_asyncio

from hfserve.errors import DeadlineExceeded, ModelError, Overloaded
from hfserve.runtime.batching.batcher import Batcher


class FakeModel:
    """run_batch doubles each payload; records the batches it saw; 'poison' raises;
    'block' holds the worker until released."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def run_batch(self, payloads: list[Any]) -> list[Any]:
        self.batches.append(list(payloads))
        if "block" in payloads:
            self.started.set()
            self.release.wait(10)
        if "poison" in payloads:
            raise RuntimeError("cannot embed poison")
        return [p * 2 for p in payloads]

    @property
    def seen(self) -> list[Any]:
        return [p for batch in self.batches for p in batch]


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest_asyncio.fixture(loop_scope="function")
async def make_batcher(model: FakeModel) -> AsyncIterator[Callable[..., Batcher]]:
    executor = ThreadPoolExecutor(1)
    made: list[Batcher] = []

    def make(**kw: Any) -> Batcher:
        options = dict(max_batch_size=8, max_batch_tokens=1000, max_wait=0.0, max_queue=64,
                       executor=executor)
        options.update(kw)
        batcher = Batcher("fake", model.run_batch, **options)
        batcher.start()
        made.append(batcher)
        return batcher

    yield make
    model.release.set()
    for batcher in made:
        await batcher.stop()
    executor.shutdown(wait=True)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.002)


async def block_worker(batcher: Batcher, model: FakeModel) -> asyncio.Task:
    """Occupy the worker thread with a 'block' item and wait until it is running."""
    task = asyncio.create_task(batcher.submit(["block"], [1]))
    await asyncio.wait_for(asyncio.to_thread(model.started.wait, 5), 6)
    assert model.started.is_set()
    return task


async def test_results_come_back_in_order(make_batcher, model: FakeModel) -> None:
    batcher = make_batcher()
    assert await batcher.submit(["a", "b", "c"], [1, 5, 2]) == ["aa", "bb", "cc"]
    assert await batcher.submit([1, 2], [1, 1]) == [2, 4]


async def test_concurrent_submits_are_batched_together(make_batcher, model: FakeModel) -> None:
    batcher = make_batcher()
    blocker = await block_worker(batcher, model)
    waiting = [asyncio.create_task(batcher.submit([f"x{i}"], [1])) for i in range(5)]
    await wait_until(lambda: batcher.queue_depth == 5)
    await asyncio.sleep(0.05)   # a part batch keeps gathering while the worker is busy
    assert batcher.queue_depth == 5 and batcher.in_flight == 1
    model.release.set()
    results = await asyncio.gather(*waiting)
    assert results == [[f"x{i}x{i}"] for i in range(5)]
    assert await blocker == ["blockblock"]
    assert [len(b) for b in model.batches] == [1, 5]


async def test_max_batch_size_splits_a_large_queue(make_batcher, model: FakeModel) -> None:
    batcher = make_batcher(max_batch_size=2)
    blocker = await block_worker(batcher, model)
    waiting = [asyncio.create_task(batcher.submit([i], [1])) for i in range(5)]
    # While the worker is busy, the first full batch is handed to it to run next; the rest
    # waits in the queue.
    await wait_until(lambda: batcher.queue_depth == 3)
    await asyncio.sleep(0.05)
    assert batcher.queue_depth == 3 and batcher.in_flight == 2
    model.release.set()
    assert await asyncio.gather(*waiting) == [[2 * i] for i in range(5)]
    await blocker
    assert [len(b) for b in model.batches] == [1, 2, 2, 1]


async def test_a_poisoned_item_fails_only_its_own_request(make_batcher, model: FakeModel) -> None:
    batcher = make_batcher()
    blocker = await block_worker(batcher, model)
    good1 = asyncio.create_task(batcher.submit(["a"], [1]))
    bad = asyncio.create_task(batcher.submit(["poison"], [1]))
    good2 = asyncio.create_task(batcher.submit(["b"], [1]))
    await wait_until(lambda: batcher.queue_depth == 3)
    model.release.set()
    await blocker
    assert await good1 == ["aa"]
    assert await good2 == ["bb"]
    with pytest.raises(ModelError) as info:
        await bad
    assert "poison" in info.value.message
    # The whole batch failed first, then every item was retried on its own.
    assert model.batches[1] == ["a", "poison", "b"]
    assert sorted(map(tuple, model.batches[2:])) == [("a",), ("b",), ("poison",)]
    # The worker loop survived.
    assert await batcher.submit(["c"], [1]) == ["cc"]


async def test_full_queue_raises_overloaded_with_retry_after(make_batcher,
                                                             model: FakeModel) -> None:
    batcher = make_batcher(max_queue=2)
    blocker = await block_worker(batcher, model)
    queued = asyncio.create_task(batcher.submit(["a", "b"], [1, 1]))
    await wait_until(lambda: batcher.queue_depth == 2)
    with pytest.raises(Overloaded) as info:
        await batcher.submit(["c"], [1])
    assert info.value.status == 429
    assert int(info.value.headers["Retry-After"]) >= 1
    assert "c" not in model.seen
    model.release.set()
    await blocker
    assert await queued == ["aa", "bb"]


async def test_submit_is_all_or_nothing_when_it_would_overflow(make_batcher,
                                                              model: FakeModel) -> None:
    batcher = make_batcher(max_queue=2)
    blocker = await block_worker(batcher, model)
    with pytest.raises(Overloaded):
        await batcher.submit(["a", "b", "c"], [1, 1, 1])
    assert batcher.queue_depth == 0
    model.release.set()
    await blocker
    assert model.seen == ["block"]


async def test_expired_deadline_never_reaches_the_model(make_batcher, model: FakeModel) -> None:
    clock = FakeClock(100.0)
    batcher = make_batcher(clock=clock)
    with pytest.raises(DeadlineExceeded) as info:
        await asyncio.wait_for(batcher.submit(["late"], [1], deadline=99.0), 5)
    assert info.value.status == 504
    assert "late" not in model.seen
    assert await batcher.submit(["on-time"], [1], deadline=101.0) == ["on-timeon-time"]


async def test_a_handed_over_item_that_expires_while_waiting_never_runs(
        make_batcher, model: FakeModel) -> None:
    clock = FakeClock(100.0)
    batcher = make_batcher(max_batch_size=1, clock=clock)
    blocker = await block_worker(batcher, model)
    late = asyncio.create_task(batcher.submit(["late"], [1], deadline=101.0))
    await wait_until(lambda: batcher.in_flight == 2)    # handed to the busy worker in time
    clock.now = 102.0                                    # ... and expired behind it
    model.release.set()
    with pytest.raises(DeadlineExceeded):
        await asyncio.wait_for(late, 5)
    assert await blocker == ["blockblock"]
    assert "late" not in model.seen


async def test_high_priority_items_queued_later_run_first(make_batcher,
                                                          model: FakeModel) -> None:
    batcher = make_batcher(max_batch_size=1)
    blocker = await block_worker(batcher, model)
    # low0 is a full batch and goes to the busy worker at once (in flight); the rest queue.
    low = [asyncio.create_task(batcher.submit([f"low{i}"], [1], priority=2)) for i in range(3)]
    await wait_until(lambda: batcher.queue_depth == 2)
    high = [asyncio.create_task(batcher.submit([f"high{i}"], [1], priority=0))
            for i in range(2)]
    await wait_until(lambda: batcher.queue_depth == 4)
    model.release.set()
    await asyncio.gather(blocker, *low, *high)
    assert model.seen == ["block", "low0", "high0", "high1", "low1", "low2"]


async def test_a_cancelled_submit_leaves_the_queue(make_batcher, model: FakeModel) -> None:
    batcher = make_batcher()
    blocker = await block_worker(batcher, model)
    gone = asyncio.create_task(batcher.submit(["gone"], [1]))
    await wait_until(lambda: batcher.queue_depth == 1)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert batcher.queue_depth == 0
    model.release.set()
    await blocker
    assert await batcher.submit(["next"], [1]) == ["nextnext"]
    assert "gone" not in model.seen


async def test_batcher_survives_a_request_cancelled_while_the_batch_fills(
        make_batcher, model: FakeModel) -> None:
    # The only queued request leaves while the loop waits for max_wait to fill a batch;
    # the loop must keep serving the requests that come afterwards.
    batcher = make_batcher(max_wait=0.05)
    gone = asyncio.create_task(batcher.submit(["gone"], [1]))
    await wait_until(lambda: batcher.queue_depth == 1)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    await asyncio.sleep(0.15)  # past max_wait, with the queue empty
    assert await asyncio.wait_for(batcher.submit(["next"], [1]), 3) == ["nextnext"]


@pytest.mark.parametrize("where", ["queued", "handed over"])
async def test_stop_fails_items_that_have_not_run(make_batcher, model: FakeModel,
                                                  where: str) -> None:
    # With batches of one, the item is a full batch: handed to the busy worker at once.
    batcher = make_batcher(**({"max_batch_size": 1} if where == "handed over" else {}))
    blocker = await block_worker(batcher, model)
    item = asyncio.create_task(batcher.submit(["a"], [1]))
    if where == "queued":
        await wait_until(lambda: batcher.queue_depth == 1)
    else:
        await wait_until(lambda: batcher.in_flight == 2)
        assert batcher.queue_depth == 0 and not item.done()
    await batcher.stop()
    with pytest.raises(ModelError):
        await item
    model.release.set()
    blocker.cancel()
    await asyncio.gather(blocker, return_exceptions=True)
    assert "a" not in model.seen


async def test_under_pressure_low_priority_is_shed_first(make_batcher, model: FakeModel) -> None:
    batcher = make_batcher(max_batch_size=1, max_queue=2)
    blocker = await block_worker(batcher, model)
    # low0 is handed to the busy worker (in flight); low1 and low2 fill the queue.
    low = [asyncio.create_task(batcher.submit(["low0"], [1], priority=2))]
    await wait_until(lambda: batcher.in_flight == 2)
    low += [asyncio.create_task(batcher.submit([f"low{i}"], [1], priority=2)) for i in (1, 2)]
    await wait_until(lambda: batcher.queue_depth == 2)
    high = asyncio.create_task(batcher.submit(["high"], [1], priority=0))
    await wait_until(lambda: low[2].done())
    with pytest.raises(Overloaded) as shed:
        await low[2]
    assert shed.value.headers["Retry-After"] == "2"
    # Same priority never sheds: a second low request is refused outright.
    with pytest.raises(Overloaded):
        await batcher.submit(["low-late"], [1], priority=2)
    model.release.set()
    await asyncio.gather(blocker, low[0], low[1], high)
    assert model.seen == ["block", "low0", "high", "low1"]


async def test_two_workers_run_a_second_batch_beside_a_busy_one(make_batcher,
                                                                 model: FakeModel) -> None:
    pool = ThreadPoolExecutor(2)
    batcher = make_batcher(workers=2, executor=pool)
    blocker = await block_worker(batcher, model)
    # Answered while the first batch still holds its worker.
    assert await asyncio.wait_for(batcher.submit(["x"], [1]), 5) == ["xx"]
    assert not blocker.done()
    model.release.set()
    assert await blocker == ["blockblock"]
    pool.shutdown(wait=True)
