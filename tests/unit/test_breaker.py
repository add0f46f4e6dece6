"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

from hfserve.runtime.lifecycle.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(failures: int = 3, open_s: float = 10.0) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(failures, open_s, clock=clock), clock


def test_it_opens_after_n_consecutive_failures_only() -> None:
    b, _ = breaker()
    b.failure()
    b.failure()
    b.success()                 # a success in between starts the count again
    b.failure()
    b.failure()
    assert b.state == BreakerState.CLOSED and b.allow()
    b.failure()
    assert b.state == BreakerState.OPEN
    assert not b.allow()


def test_open_fails_fast_until_its_time_is_up_then_lets_one_probe_through() -> None:
    b, clock = breaker(failures=1, open_s=10)
    b.failure()
    clock.now += 4
    assert not b.allow()
    assert b.retry_after() == 6
    clock.now += 6
    assert b.state == BreakerState.HALF_OPEN
    assert b.allow()            # the probe
    assert not b.allow()        # everyone else while it runs
    assert b.state == BreakerState.HALF_OPEN


def test_a_probe_that_succeeds_closes_it() -> None:
    b, clock = breaker(failures=1, open_s=1)
    b.failure()
    clock.now += 1
    assert b.allow()
    b.success()
    assert b.state == BreakerState.CLOSED
    assert b.allow() and b.allow()


def test_a_probe_that_fails_opens_it_again_for_a_full_period() -> None:
    b, clock = breaker(failures=3, open_s=5)
    for _ in range(3):
        b.failure()
    clock.now += 5
    assert b.allow()
    b.failure()                 # one failure is enough when half-open
    assert b.state == BreakerState.OPEN
    assert b.retry_after() == 5
    clock.now += 4.9
    assert not b.allow()


def test_a_probe_that_ends_without_a_verdict_lets_the_next_one_in() -> None:
    b, clock = breaker(failures=1, open_s=1)
    b.failure()
    clock.now += 1
    assert b.allow() and not b.allow()
    b.release_probe()           # e.g. the probe was a client's 400
    assert b.allow()


def test_retry_after_is_at_least_a_second() -> None:
    b, clock = breaker(failures=1, open_s=10)
    assert b.retry_after() == 1
    b.failure()
    clock.now += 9.8
    assert b.retry_after() == 1
