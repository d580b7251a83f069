"""Counts SQL statements sent to PostgreSQL: the per-request round-trip budget is measured."""

from __future__ import annotations

from typing import Any


class StatementCounter:
    """A running total of statements, fed by asyncpg's query logger on every pool connection."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, _record: Any) -> None:
        self.total += 1
