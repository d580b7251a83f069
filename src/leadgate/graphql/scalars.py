"""Custom scalars of the contract (DESIGN §3)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from leadgate.domain.formats import iso_utc


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO-8601 string")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("DateTime must carry an offset (e.g. Z or +02:00)")
    return moment


# Mapped onto `datetime` through StrawberryConfig.scalar_map (see schema.py).
DateTime = strawberry.scalar(
    name="DateTime",
    description="ISO-8601 date and time with an offset, e.g. 2025-01-15T10:30:00.000Z",
    serialize=iso_utc,
    parse_value=_parse_datetime,
)
