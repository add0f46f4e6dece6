"""Which architecture families run on which device kinds.

The table lives in ``compatibility.json`` beside this module: one row per ``Family``,
one column per device kind, each cell "full", "partial" or "none".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from hfserve.hardware.device import KINDS
from hfserve.types import Family

DATA_FILE = "compatibility.json"


class Support(StrEnum):
    """How well a device kind runs a family: every model, most models, or none."""

    FULL = "full"
    PARTIAL = "partial"
    NONE = "none"


def _validate(document: Mapping[str, Any]) -> dict[Family, dict[str, Support]]:
    """Check the document covers every family and kind with known levels; parse it."""
    if tuple(document.get("kinds", ())) != KINDS:
        raise ValueError(f"{DATA_FILE}: kinds must be {list(KINDS)}")
    rows = document.get("families", {})
    families = {family.value for family in Family}
    if set(rows) != families:
        missing = sorted(families - set(rows))
        unknown = sorted(set(rows) - families)
        raise ValueError(f"{DATA_FILE}: families missing {missing}, unknown {unknown}")
    parsed: dict[Family, dict[str, Support]] = {}
    for name, row in rows.items():
        if tuple(row) != KINDS:
            raise ValueError(
                f"{DATA_FILE}: row {name!r} must list kinds {list(KINDS)} in order"
            )
        parsed[Family(name)] = {kind: Support(level) for kind, level in row.items()}
    return parsed


def parse(text: str) -> dict[Family, dict[str, Support]]:
    """Parse and validate a compatibility document."""
    return _validate(json.loads(text))


@cache
def _table() -> dict[Family, dict[str, Support]]:
    text = (
        resources.files("hfserve.hardware")
        .joinpath(DATA_FILE)
        .read_text(encoding="utf-8")
    )
    return parse(text)


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(
            f"unknown device kind {kind!r}; expected one of {', '.join(KINDS)}"
        )
    return kind


def support(family: Family | str, kind: str) -> Support:
    """How well ``kind`` runs models of ``family``."""
    return _table()[Family(family)][_kind(kind)]


def compatible_kinds(family: Family | str) -> list[str]:
    """Kinds with full or partial support for ``family``, in priority order."""
    row = _table()[Family(family)]
    return [kind for kind in KINDS if row[kind] is not Support.NONE]


def table() -> dict[str, dict[str, str]]:
    """The whole table as plain strings, for display and JSON."""
    return {
        family.value: {kind: level.value for kind, level in row.items()}
        for family, row in _table().items()
    }
