"""Batch selection policy (runtime/batching/selection.py), driven by a fake clock."""

from __future__ import annotations

import pytest

from hfserve.runtime.batching.selection import Pending, padded_cost, ready, select_batch


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def items(costs: list[int], clock: FakeClock) -> list[Pending]:
    return [Pending(cost=c, arrival=clock(), payload=i) for i, c in enumerate(costs)]


# Binary-exact times so the comparisons at the boundary are exact.
LIMITS = dict(max_batch_size=4, max_wait=0.5, max_batch_tokens=100)


# --- padded_cost -------------------------------------------------------------------------
def test_padded_cost_is_longest_times_count(clock: FakeClock) -> None:
    assert padded_cost(items([3, 7, 5], clock)) == 21
    assert padded_cost([]) == 0


# --- ready ---------------------------------------------------------------------------------
def test_empty_queue_is_never_ready(clock: FakeClock) -> None:
    clock.advance(60)
    assert ready([], clock(), **LIMITS) is False


def test_full_batch_is_ready_at_once(clock: FakeClock) -> None:
    queue = items([1, 1, 1, 1], clock)
    assert ready(queue, clock(), **LIMITS) is True


def test_partial_batch_waits_until_max_wait(clock: FakeClock) -> None:
    queue = items([1, 1], clock)
    assert ready(queue, clock(), **LIMITS) is False
    clock.advance(0.25)
    assert ready(queue, clock(), **LIMITS) is False
    clock.advance(0.125)
    assert ready(queue, clock(), **LIMITS) is False
    clock.advance(0.125)
    assert ready(queue, clock(), **LIMITS) is True


def test_token_budget_reached_is_ready(clock: FakeClock) -> None:
    # Two items, the longest 50 tokens: padded cost 100 reaches the budget.
    queue = items([50, 3], clock)
    assert ready(queue, clock(), **LIMITS) is True
    assert ready(items([49, 3], clock), clock(), **LIMITS) is False


def test_wait_is_measured_from_the_oldest_item_not_the_first(clock: FakeClock) -> None:
    old = Pending(cost=1, arrival=clock())
    clock.advance(0.375)
    new_high_priority = Pending(cost=1, arrival=clock(), priority=0)
    queue = [new_high_priority, old]  # queue order is priority first
    clock.advance(0.125)
    assert ready(queue, clock(), **LIMITS) is True


# --- select_batch ----------------------------------------------------------------------------
def test_select_from_empty_queue() -> None:
    assert select_batch([], max_batch_size=4, max_batch_tokens=100) == []


def test_oldest_item_is_always_included_even_over_budget(clock: FakeClock) -> None:
    queue = items([500, 1, 1], clock)
    batch = select_batch(queue, max_batch_size=4, max_batch_tokens=100)
    assert batch == [queue[0]]


def test_neighbours_of_similar_length_are_chosen(clock: FakeClock) -> None:
    queue = items([10, 50, 11, 9, 48, 12], clock)
    batch = select_batch(queue, max_batch_size=3, max_batch_tokens=1000)
    assert [p.cost for p in batch] == [10, 11, 9]
    assert queue[1] not in batch and queue[4] not in batch


def test_token_budget_counts_padded_tokens(clock: FakeClock) -> None:
    queue = items([5, 20, 6], clock)
    # 5 and 6 pad to 12 tokens; adding the 20-token item would pad to 60.
    batch = select_batch(queue, max_batch_size=8, max_batch_tokens=15)
    assert [p.cost for p in batch] == [5, 6]
    assert padded_cost(batch) <= 15


def test_equal_items_fill_the_budget_exactly(clock: FakeClock) -> None:
    queue = items([10, 10, 10, 10], clock)
    batch = select_batch(queue, max_batch_size=8, max_batch_tokens=30)
    assert len(batch) == 3
    assert batch[0] is queue[0]


def test_max_batch_size_is_respected(clock: FakeClock) -> None:
    queue = items([1] * 10, clock)
    batch = select_batch(queue, max_batch_size=4, max_batch_tokens=10_000)
    assert len(batch) == 4
    assert batch[0] is queue[0]


def test_batch_comes_back_in_queue_order(clock: FakeClock) -> None:
    queue = items([30, 5, 29, 31, 28, 6], clock)
    batch = select_batch(queue, max_batch_size=4, max_batch_tokens=10_000)
    positions = [queue.index(p) for p in batch]
    assert positions == sorted(positions)
    assert {p.cost for p in batch} == {28, 29, 30, 31}


def test_window_limits_which_items_are_considered(clock: FakeClock) -> None:
    queue = items([10, 90, 10], clock)
    batch = select_batch(queue, max_batch_size=2, max_batch_tokens=10_000, window=2)
    assert batch == [queue[0], queue[1]]
    wider = select_batch(queue, max_batch_size=2, max_batch_tokens=10_000, window=3)
    assert wider == [queue[0], queue[2]]
