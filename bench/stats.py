"""Small statistics helpers shared by the benchmark modules."""

from __future__ import annotations

import math


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation); NaN for no values."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")
