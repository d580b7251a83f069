"""A rate as configured: points per second and the bucket (burst) they refill.

Spelled `RATE` or `RATE,BURST` (`100` is 100 points a second with a bucket of 100; `100,1000`
lets a client spend 1000 at once, then 100 a second). A REST request costs 1 point, a GraphQL
operation its cost (graphql/gate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_second) and self.per_second > 0):
            raise ValueError("points per second must be > 0")
        # A bucket smaller than one point would refuse every REST request forever.
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError("the burst must be ≥ 1")

    @property
    def window(self) -> int:
        """Whole seconds an empty bucket takes to fill: RateLimit-Policy's `w`."""
        return max(1, math.ceil(self.burst / self.per_second))


def parse_rate(text: str) -> Rate:
    """`RATE` or `RATE,BURST`; ValueError for anything else."""
    rate, _, burst = text.strip().partition(",")
    per_second = float(rate)
    return Rate(per_second, float(burst) if burst.strip() else per_second)


def show_rate(rate: Rate) -> str:
    def number(value: float) -> str:
        return str(int(value)) if value.is_integer() else repr(value)

    if rate.burst == rate.per_second:
        return number(rate.per_second)
    return f"{number(rate.per_second)},{number(rate.burst)}"
