"""Argument types of the commands: durations, rates, counts."""

from __future__ import annotations

import argparse
from typing import Final

from leadgate.domain.rate_limits import Rate, parse_rate

_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """`90`, `90s`, `15m`, `1h` or `2d` as seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _DURATION_UNITS else (text, "s")
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError("a duration such as 90s, 15m, 1h or 2d") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError("must be more than 0")
    return seconds


def rate(text: str) -> Rate:
    """`RATE` or `RATE,BURST` points per second (README "Rate limits")."""
    try:
        return parse_rate(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "points per second > 0, optionally ,BURST ≥ 1 (e.g. 10 or 10,100)"
        ) from None


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value
