"""The CPU quota: the affinity mask capped by the cgroup v2 or v1 quota, read from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfserve.hardware import cpu_quota, system
from hfserve.hardware.quota import cgroup_cpus


@pytest.fixture
def cgroup(tmp_path: Path) -> dict:
    """Where the quota files would be; each test writes the ones its machine has."""
    return {"v2": tmp_path / "cpu.max",
            "v1": (tmp_path / "cpu.cfs_quota_us", tmp_path / "cpu.cfs_period_us")}


def test_a_v2_quota_caps_the_affinity_mask(cgroup) -> None:
    cgroup["v2"].write_text("200000 100000\n")
    assert cpu_quota(4, **cgroup) == 2
    assert cpu_quota(1, **cgroup) == 1          # the mask can be the smaller one


def test_a_fractional_quota_rounds_down_but_never_to_zero(cgroup) -> None:
    cgroup["v2"].write_text("150000 100000")
    assert cgroup_cpus(**cgroup) == 1.5
    assert cpu_quota(4, **cgroup) == 1
    cgroup["v2"].write_text("50000 100000")
    assert cpu_quota(4, **cgroup) == 1


def test_no_v2_limit_leaves_the_affinity_mask(cgroup) -> None:
    cgroup["v2"].write_text("max 100000\n")
    assert cgroup_cpus(**cgroup) is None
    assert cpu_quota(4, **cgroup) == 4


def test_cgroup_v1_files(cgroup) -> None:
    quota, period = cgroup["v1"]
    quota.write_text("300000\n")
    period.write_text("100000\n")
    assert cpu_quota(8, **cgroup) == 3
    quota.write_text("-1\n")                    # v1's "no limit"
    assert cpu_quota(8, **cgroup) == 8


def test_v2_wins_over_v1_where_both_are_mounted(cgroup) -> None:
    cgroup["v2"].write_text("100000 100000")
    cgroup["v1"][0].write_text("400000")
    cgroup["v1"][1].write_text("100000")
    assert cpu_quota(8, **cgroup) == 1


def test_missing_or_garbled_files_leave_the_affinity_mask(cgroup) -> None:
    assert cpu_quota(3, **cgroup) == 3
    cgroup["v1"][0].write_text("100000")       # a quota without its period
    assert cpu_quota(3, **cgroup) == 3
    cgroup["v2"].write_text("not a quota")
    assert cpu_quota(3, **cgroup) == 3


def test_the_default_affinity_is_this_process_mask(cgroup, monkeypatch) -> None:
    monkeypatch.setattr(system, "usable_cores", lambda: 6)
    cgroup["v2"].write_text("400000 100000")
    assert cpu_quota(**cgroup) == 4
    cgroup["v2"].write_text("max 100000")
    assert cpu_quota(**cgroup) == 6
