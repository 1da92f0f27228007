"""Latency summaries: percentiles of a sample of durations, in milliseconds.

Percentiles use the nearest-rank method on the sorted sample (no interpolation), so a p99 is a
latency that really happened. An empty sample summarizes to ``None`` fields rather than zeros: a
figure that was not measured must never read as a fast one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Latency:
    """A latency sample in milliseconds: how many, and its p50/p95/p99/max."""

    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of_seconds(cls, samples: Sequence[float]) -> Latency:
        if not samples:
            return cls(0, None, None, None, None)
        ms = sorted(s * 1000.0 for s in samples)
        return cls(
            n=len(ms),
            p50=round(percentile(ms, 50), 3),
            p95=round(percentile(ms, 95), 3),
            p99=round(percentile(ms, 99), 3),
            max=round(ms[-1], 3),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ratio(ours: float | None, floor: float | None) -> float | None:
    """``ours / floor``, or None when either is missing or the floor is zero."""
    if ours is None or floor is None or floor == 0:
        return None
    return round(ours / floor, 2)
