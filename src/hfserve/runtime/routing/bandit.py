"""Choosing one model of a group per request: Thompson sampling over a Beta posterior of each
arm's reward, or a static split by weights (A/B). Pure: the clock and the random source are
given, so that a test drives it deterministically."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

RECENT = 200            # choices kept for the recent traffic share


@dataclass(frozen=True)
class Reward:
    """What one request is worth, in [0, 1]: 0 when it failed; else 1 when it met the
    latency target (or none is set), ``1 - latency_weight`` when it did not. Explicit
    feedback moves the posterior by ``feedback_weight`` times its score."""

    latency_target_s: float | None = None
    latency_weight: float = 0.5
    feedback_weight: float = 1.0

    def of(self, ok: bool, seconds: float) -> float:
        if not ok:
            return 0.0
        late = self.latency_target_s is not None and seconds > self.latency_target_s
        return 1.0 - self.latency_weight if late else 1.0


@dataclass
class Arm:
    name: str
    alpha: float
    beta: float
    weight: float | None = None
    served: int = 0

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def update(self, reward: float, weight: float = 1.0) -> None:
        self.alpha += weight * reward
        self.beta += weight * (1.0 - reward)


@dataclass(frozen=True)
class Trial:
    """One request given to an arm: ended by ``Bandit.finish``."""

    arm: str
    started: float


@dataclass
class Bandit:
    arms: dict[str, Arm]
    reward: Reward = field(default_factory=Reward)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))

    @classmethod
    def of(cls, names: Iterable[str], *, weights: dict[str, float] | None = None,
           prior: tuple[float, float] = (1.0, 1.0), reward: Reward | None = None,
           rng: random.Random | None = None,
           clock: Callable[[], float] = time.monotonic) -> Bandit:
        arms = {n: Arm(n, prior[0], prior[1], (weights or {}).get(n) if weights else None)
                for n in names}
        return cls(arms, reward or Reward(), rng or random.Random(), clock)

    @property
    def static(self) -> bool:
        """A fixed split (A/B): every arm has a weight, and the posteriors only report."""
        return all(a.weight is not None for a in self.arms.values())

    def choose(self, available: Iterable[str] | None = None) -> str:
        """The arm for the next request, among ``available`` (all arms when None, or when
        none of them is available: a request then meets the arm's own error)."""
        names = [n for n in (available if available is not None else self.arms)
                 if n in self.arms] or list(self.arms)
        if self.static:
            weights = [self.arms[n].weight or 0.0 for n in names]
            name = self.rng.choices(names, weights)[0] if sum(weights) > 0 else names[0]
        else:
            name = max(names, key=lambda n: self.rng.betavariate(self.arms[n].alpha,
                                                                  self.arms[n].beta))
        self.arms[name].served += 1
        self.recent.append(name)
        return name

    def start(self, available: Iterable[str] | None = None) -> Trial:
        return Trial(self.choose(available), self.clock())

    def finish(self, trial: Trial, ok: bool) -> float:
        reward = self.reward.of(ok, self.clock() - trial.started)
        self.arms[trial.arm].update(reward)
        return reward

    def feedback(self, arm: str, score: float) -> None:
        """An explicit judgement of a response of ``arm``: 1 good, 0 bad."""
        self.arms[arm].update(score, self.reward.feedback_weight)

    def share(self, recent: bool = False) -> dict[str, float]:
        if recent:
            total = len(self.recent) or 1
            return {n: sum(1 for r in self.recent if r == n) / total for n in self.arms}
        total = sum(a.served for a in self.arms.values()) or 1
        return {n: a.served / total for n, a in self.arms.items()}

    def describe(self) -> dict:
        total, recent = self.share(), self.share(recent=True)
        return {"policy": "weighted" if self.static else "thompson",
                "arms": [{"model": a.name, "alpha": a.alpha, "beta": a.beta,
                          "mean": a.mean, "weight": a.weight, "requests": a.served,
                          "share": total[a.name], "recent_share": recent[a.name]}
                         for a in self.arms.values()]}
