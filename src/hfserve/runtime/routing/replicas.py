"""Replicas: a model asked for N times (``replicas``, ``devices``) is N ordinary model entries,
``name@0`` .. ``name@N-1``, each with its own worker and breaker; its name stands for the
set, and each request goes to the less loaded of two replicas drawn at random (power of two
choices: close to the least loaded, without every request crowding the same one)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from hfserve.hardware import cpu_quota
from hfserve.model_config import ModelConfig

T = TypeVar("T")


def count(mc: ModelConfig) -> int:
    return mc.replicas if mc.replicas > 1 or not mc.devices else len(mc.devices)


def expand(mc: ModelConfig) -> list[ModelConfig]:
    """The model, or its replicas: each one named ``name@i``, on its device, and on the CPU
    with its share of the CPUs when the config sets no threads (two replicas each using
    every core would only contend)."""
    n = count(mc)
    if n == 1 and not mc.devices:
        return [mc]
    devices = mc.devices or [mc.device]
    name = mc.served_name
    out = []
    for i in range(n):
        device = devices[i % len(devices)]
        threads = mc.threads
        on_cpu = device == "cpu" or (device == "auto" and not mc.devices)
        if threads is None and on_cpu:
            threads = max(1, cpu_quota() // n)
        out.append(mc.model_copy(update={
            "name": f"{name}@{i}", "aliases": [], "device": device, "threads": threads,
            "replicas": 1, "devices": None, "replica_of": name}))
    return out


def least_loaded(replicas: Sequence[T], load: Callable[[T], int],
                 rng: random.Random) -> T:
    """Power of two choices: the less loaded of two replicas drawn at random."""
    if len(replicas) == 1:
        return replicas[0]
    a, b = rng.sample(list(replicas), 2)
    return a if load(a) <= load(b) else b
