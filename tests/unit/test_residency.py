"""The residency planner: least recently used idle models leave first; pinned and busy ones
never; a plan that cannot make room says what holds the memory."""

from __future__ import annotations

import pytest

from hfserve.errors import MemoryExhausted
from hfserve.runtime.lifecycle.residency import Resident, plan_evictions

MIB = 2**20


def test_nothing_leaves_when_it_fits() -> None:
    residents = [Resident("a", 100 * MIB, last_used=1)]
    assert plan_evictions("new", 50 * MIB, 50 * MIB, residents) == []


def test_least_recently_used_leaves_first_and_only_as_many_as_needed() -> None:
    residents = [Resident("b", 100 * MIB, last_used=2), Resident("a", 100 * MIB, last_used=1),
                 Resident("c", 100 * MIB, last_used=3)]
    assert plan_evictions("new", 150 * MIB, 60 * MIB, residents) == ["a"]
    assert plan_evictions("new", 250 * MIB, 60 * MIB, residents) == ["a", "b"]


def test_pinned_and_busy_models_are_skipped_even_when_least_recent() -> None:
    residents = [Resident("pinned", 500 * MIB, last_used=0, pinned=True),
                 Resident("busy", 500 * MIB, last_used=1, busy=True),
                 Resident("idle", 100 * MIB, last_used=5)]
    assert plan_evictions("new", 100 * MIB, 10 * MIB, residents) == ["idle"]


def test_no_room_names_what_holds_it() -> None:
    residents = [Resident("pinned", 500 * MIB, last_used=0, pinned=True),
                 Resident("busy", 500 * MIB, last_used=1, busy=True),
                 Resident("idle", 100 * MIB, last_used=5)]
    with pytest.raises(MemoryExhausted) as info:
        plan_evictions("big", 400 * MIB, 10 * MIB, residents, device="cpu")
    error = info.value
    assert error.status == 503 and error.code == "model_memory_exhausted"
    assert "insufficient memory to load big on cpu" in error.message
    assert "needs 400.0 MiB" in error.message and "10.0 MiB free" in error.message
    assert "pinned (pinned)" in error.message and "busy (busy)" in error.message
    assert int(error.headers["Retry-After"]) >= 1


def test_the_model_being_loaded_is_never_its_own_victim() -> None:
    residents = [Resident("self", 100 * MIB, last_used=0), Resident("b", 100 * MIB, 1)]
    assert plan_evictions("self", 150 * MIB, 60 * MIB, residents) == ["b"]


def test_exact_fit_evicts_nothing_more() -> None:
    residents = [Resident("a", 40 * MIB, last_used=1), Resident("b", 40 * MIB, last_used=2)]
    assert plan_evictions("new", 100 * MIB, 60 * MIB, residents) == ["a"]
