"""The response cache: bounded by bytes, least recently used out first, entries that expire,
sizes of arrays and Python objects, values no caller can change."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pytest
from prometheus_client import REGISTRY

from hfserve.runtime.caching.response_cache import ENTRY_OVERHEAD, MISSING, ResponseCache, size_of


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def vector(fill: float, n: int = 64) -> np.ndarray:
    return np.full(n, fill, dtype=np.float32)


def entry_size(key: str, value) -> int:
    return size_of(value) + len(key) + ENTRY_OVERHEAD


def test_a_stored_value_is_found_and_an_unknown_key_is_not() -> None:
    cache = ResponseCache(1 << 20, 60)
    cache.put("a", vector(1.0), "m")
    assert np.array_equal(cache.get("a", "m"), vector(1.0))
    assert cache.get("b", "m") is MISSING


def test_the_byte_bound_is_never_exceeded() -> None:
    bound = 10 * entry_size("k000", vector(0.0))
    cache = ResponseCache(bound, 60)
    for i in range(200):
        cache.put(f"k{i:03d}", vector(float(i)), "m")
        assert cache.bytes <= bound
    assert len(cache) == 10
    assert cache.bytes == sum(entry_size(f"k{i:03d}", vector(0.0)) for i in range(190, 200))


def test_the_least_recently_used_goes_first() -> None:
    cache = ResponseCache(3 * entry_size("a", vector(0.0)), 60)
    for key in "abc":
        cache.put(key, vector(1.0), "m")
    assert cache.get("a", "m") is not MISSING      # a is now the most recently used
    cache.put("d", vector(1.0), "m")
    assert cache.get("b", "m") is MISSING
    assert all(cache.get(k, "m") is not MISSING for k in "acd")


def test_an_entry_expires_after_the_ttl() -> None:
    clock = Clock()
    cache = ResponseCache(1 << 20, 10, clock)
    cache.put("a", {"x": 1}, "m")
    clock.now = 9.9
    assert cache.get("a", "m") == {"x": 1}
    clock.now = 10.0
    assert cache.get("a", "m") is MISSING
    assert cache.bytes == 0 and len(cache) == 0


def test_reading_does_not_extend_the_ttl() -> None:
    clock = Clock()
    cache = ResponseCache(1 << 20, 10, clock)
    cache.put("a", "value", "m")
    for t in (3.0, 6.0, 9.0):
        clock.now = t
        assert cache.get("a", "m") == "value"
    clock.now = 10.5
    assert cache.get("a", "m") is MISSING


def test_expired_entries_at_the_old_end_make_room() -> None:
    clock = Clock()
    cache = ResponseCache(1 << 20, 10, clock)
    cache.put("a", vector(1.0), "m")
    clock.now = 11
    cache.put("b", vector(1.0), "m")
    assert len(cache) == 1 and cache.bytes == entry_size("b", vector(1.0))


def test_a_value_larger_than_the_cache_is_not_kept() -> None:
    cache = ResponseCache(1000, 60)
    cache.put("small", vector(1.0, 4), "m")
    cache.put("big", vector(1.0, 1000), "m")
    assert cache.get("big", "m") is MISSING
    assert cache.get("small", "m") is not MISSING


def test_zero_bytes_holds_nothing() -> None:
    cache = ResponseCache(0, 60)
    assert not cache.enabled
    cache.put("a", 1, "m")
    assert cache.get("a", "m") is MISSING and cache.bytes == 0


def test_storing_a_key_again_replaces_it_without_counting_it_twice() -> None:
    cache = ResponseCache(1 << 20, 60)
    cache.put("a", vector(1.0), "m")
    once = cache.bytes
    cache.put("a", vector(2.0), "m")
    assert cache.bytes == once and len(cache) == 1
    assert cache.get("a", "m")[0] == 2.0


def test_an_array_is_stored_as_a_read_only_copy() -> None:
    cache = ResponseCache(1 << 20, 60)
    original = vector(1.0)
    cache.put("a", original, "m")
    original[:] = 5.0                            # the caller's array is not the stored one
    got = cache.get("a", "m")
    assert got[0] == 1.0
    with pytest.raises(ValueError):
        got[0] = 7.0


def test_an_array_inside_a_tuple_is_read_only_too() -> None:
    cache = ResponseCache(1 << 20, 60)
    cache.put("a", (vector(1.0), 3), "m")
    array, cost = cache.get("a", "m")
    assert cost == 3 and not array.flags.writeable


@dataclass
class Scores:
    labels: list[str]
    scores: list[float]


def test_python_objects_are_copied_in_and_out() -> None:
    cache = ResponseCache(1 << 20, 60)
    value = Scores(["a", "b"], [0.25, 0.75])
    cache.put("k", value, "m")
    value.scores.append(1.0)
    got = cache.get("k", "m")
    assert got.scores == [0.25, 0.75]
    got.labels.clear()
    assert cache.get("k", "m").labels == ["a", "b"]


def test_the_size_of_an_array_counts_its_data_once() -> None:
    own = vector(1.0, 1000)
    assert size_of(own) == sys.getsizeof(own) >= 4000
    view = np.zeros((10, 1000), dtype=np.float32)[3]      # a row of a batch
    assert 4000 <= size_of(view) < 4400


def test_the_size_of_python_objects_counts_what_they_hold() -> None:
    labels = [f"label-{i}" for i in range(100)]
    scores = Scores(labels, [0.5] * 100)
    assert size_of(scores) > sum(sys.getsizeof(s) for s in labels)
    nested = {"entities": [{"word": "x" * 1000, "score": 0.9}]}
    assert size_of(nested) > 1000


def test_drop_model_forgets_only_that_model() -> None:
    cache = ResponseCache(1 << 20, 60)
    cache.put("a", 1, "m1")
    cache.put("b", 2, "m2")
    assert cache.drop_model("m1") == 1
    assert cache.get("a", "m1") is MISSING and cache.get("b", "m2") == 2
    assert cache.bytes == entry_size("b", 2)


def test_hits_misses_bytes_and_evictions_are_counted() -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before_hit = sample("hfserve_cache_requests_total", model="counted", result="hit")
    before_miss = sample("hfserve_cache_requests_total", model="counted", result="miss")
    before_evict = sample("hfserve_cache_evictions_total")
    cache = ResponseCache(2 * entry_size("a", 1), 60)
    cache.get("a", "counted")
    cache.put("a", 1, "counted")
    cache.get("a", "counted")
    cache.put("b", 1, "counted")
    cache.put("c", 1, "counted")                  # a goes
    assert sample("hfserve_cache_requests_total", model="counted", result="hit") \
        == before_hit + 1
    assert sample("hfserve_cache_requests_total", model="counted", result="miss") \
        == before_miss + 1
    assert sample("hfserve_cache_evictions_total") == before_evict + 1
    assert sample("hfserve_cache_bytes") == cache.bytes
