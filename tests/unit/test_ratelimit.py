"""Token-bucket arithmetic of security/ratelimit.py on a fake clock."""

from __future__ import annotations

import pytest

from hfserve.security.ratelimit import (
    REQUESTS,
    TOKENS,
    Check,
    Limiter,
    Limits,
    MemoryStore,
    decide,
    duration,
    refilled,
    settle,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def requests(capacity: float, name: str = "k:requests") -> Check:
    return Check(name, REQUESTS, capacity)


def tokens(capacity: float, name: str = "k:tokens") -> Check:
    return Check(name, TOKENS, capacity)


def test_refill_is_linear_and_capped() -> None:
    c = requests(60)                                  # one unit a second
    assert refilled(0, 0, 10, c) == 10
    assert refilled(55, 0, 10, c) == 60
    assert refilled(-30, 0, 10, c) == -20             # debt repays at the same rate
    assert refilled(5, 10, 9, c) == 5                 # a clock going back adds nothing


def test_settle_takes_from_all_or_none() -> None:
    checks = [requests(5, "a"), requests(5, "b")]
    assert settle([3, 1], checks) == (True, [2, 0])
    assert settle([3, 0.5], checks) == (False, [3, 0.5])


async def test_requests_bucket_allows_its_capacity_then_refills() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    check = [requests(5)]                             # 5 a minute: one per 12 s
    outcomes = [await store.take(check) for _ in range(6)]
    assert [o.allowed for o in outcomes] == [True] * 5 + [False]
    assert outcomes[4].levels == [0]
    clock.now += 11.9
    assert not (await store.take(check)).allowed
    clock.now += 0.2
    again = await store.take(check)
    assert again.allowed and again.levels[0] == pytest.approx(0.1 / 12)   # 12.1 s refilled


async def test_tokens_are_charged_after_and_debt_blocks_until_repaid() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    check = [tokens(600)]                             # 10 tokens a second
    assert (await store.take(check)).allowed          # tokens are not taken on admission
    await store.charge(check, 800)                    # a large request: 200 in debt
    denied = await store.take(check)
    assert not denied.allowed and denied.levels == [-200]
    decision = decide(check, denied)
    assert decision.retry_after == pytest.approx(20.1)  # back to one token
    assert decision.retry_after_header == "21"
    assert decision.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.now += 20.1
    assert (await store.take(check)).allowed


async def test_a_denied_request_takes_nothing_from_the_other_bucket() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    key, model = requests(10, "key"), requests(1, "model")
    assert (await store.take([key, model])).allowed
    assert not (await store.take([key, model])).allowed
    alone = await store.take([key])
    assert alone.levels == [8]                        # only the two allowed took from it


def test_headers_name_the_tightest_bucket_of_each_kind() -> None:
    from hfserve.security.ratelimit import Outcome

    checks = [requests(100, "key:r"), requests(10, "model:r"), tokens(1000)]
    decision = decide(checks, Outcome(True, [50.0, 4.5, 700.0]))
    assert decision.headers == {
        "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "33s",                  # 5.5 at 1/6 per second
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "700",
        "x-ratelimit-reset-tokens": "18s"}
    assert decision.allowed and decision.retry_after == 0


@pytest.mark.parametrize(("seconds", "text"), [(0.0201, "21ms"), (1.5, "1.5s"), (59.91, "60s"),
                                               (360, "6m0s"), (61.2, "1m2s")])
def test_reset_durations_read_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_limiter_checks_combine_the_key_default_and_the_model() -> None:
    limiter = Limiter(MemoryStore(), default=Limits(rpm=30),
                      models={"emb": Limits(rpm=5, tpm=100), "free": Limits()})
    assert set(limiter.models) == {"emb"}
    own = limiter.checks("alice", Limits(rpm=7), "emb")
    assert [(c.bucket, c.capacity) for c in own] == [
        ("hfserve:rl:key:alice:requests", 7), ("hfserve:rl:model:emb:requests", 5),
        ("hfserve:rl:model:emb:tokens", 100)]
    default = limiter.checks("bob", Limits(), "free")
    assert [(c.bucket, c.capacity) for c in default] == [("hfserve:rl:key:bob:requests", 30)]
    assert Limiter(MemoryStore()).checks("bob", Limits(), None) == []


async def test_limiter_charges_only_tokens_buckets() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    limiter = Limiter(store, default=Limits(rpm=10, tpm=100))
    checks = limiter.checks("k", Limits(), None)
    assert (await limiter.admit(checks)).headers["x-ratelimit-remaining-requests"] == "9"
    await limiter.charge(checks, 40)
    decision = await limiter.admit(checks)
    assert decision.headers["x-ratelimit-remaining-tokens"] == "60"
    assert decision.headers["x-ratelimit-remaining-requests"] == "8"
    assert await limiter.admit([]) is None
