"""The group bandit: Thompson sampling moves traffic to the better arm, a static split holds
its weights, and the latency target and feedback shape the reward."""

from __future__ import annotations

import random

import pytest

from hfserve.runtime.routing.bandit import Bandit, Reward


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_traffic_moves_to_the_arm_that_fails_less() -> None:
    clock, outcomes = FakeClock(), random.Random(7)
    bandit = Bandit.of(["good", "flaky"], rng=random.Random(1), clock=clock)
    for _ in range(400):
        trial = bandit.start()
        clock.now += 0.01
        failed = trial.arm == "flaky" and outcomes.random() < 0.3
        bandit.finish(trial, ok=not failed)
    recent = bandit.share(recent=True)
    assert recent["good"] > 0.8, recent
    arms = bandit.describe()["arms"]
    assert arms[0]["mean"] > arms[1]["mean"]
    assert bandit.describe()["policy"] == "thompson"


def test_a_static_split_holds_its_weights() -> None:
    bandit = Bandit.of(["a", "b"], weights={"a": 0.8, "b": 0.2}, rng=random.Random(3))
    for _ in range(1000):
        bandit.finish(bandit.start(), ok=True)
    share = bandit.share()
    assert share["a"] == pytest.approx(0.8, abs=0.04)
    assert share["b"] == pytest.approx(0.2, abs=0.04)
    assert bandit.describe()["policy"] == "weighted"


def test_a_late_answer_earns_less_than_a_timely_one() -> None:
    clock = FakeClock()
    bandit = Bandit.of(["m"], reward=Reward(latency_target_s=0.5, latency_weight=0.6),
                       clock=clock)
    trial = bandit.start()
    clock.now += 1.0
    assert bandit.finish(trial, ok=True) == pytest.approx(0.4)
    trial = bandit.start()
    clock.now += 0.1
    assert bandit.finish(trial, ok=True) == 1.0
    assert bandit.finish(bandit.start(), ok=False) == 0.0


def test_feedback_moves_the_posterior_by_its_weight() -> None:
    bandit = Bandit.of(["m"], prior=(2.0, 3.0), reward=Reward(feedback_weight=2.0))
    bandit.feedback("m", 0.0)
    arm = bandit.arms["m"]
    assert (arm.alpha, arm.beta) == (2.0, 5.0)


def test_only_available_arms_are_chosen() -> None:
    bandit = Bandit.of(["a", "b"], rng=random.Random(0))
    assert {bandit.choose(["b"]) for _ in range(50)} == {"b"}
    assert bandit.choose([]) in ("a", "b")      # none available: any arm answers its error
