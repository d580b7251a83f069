"""When and how long to wait before trying a request again.

Exponential backoff with full jitter (a random wait between 0 and base * 2^attempt, capped),
so many clients refused at once do not come back at once; never sooner than the server's
`Retry-After`. What is retried: 429 RATE_LIMITED (refused before anything ran), 503
SERVICE_UNAVAILABLE, 409 IDEMPOTENCY_KEY_IN_USE (the same key's first request still runs),
and a lost connection. Writes are retried only with their idempotency key, so a retry can
never write twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

RETRYABLE_CODES: Final = frozenset(
    {"RATE_LIMITED", "SERVICE_UNAVAILABLE", "IDEMPOTENCY_KEY_IN_USE"}
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` counts the first try (1: never retry). A `Retry-After` longer than
    `max_retry_after` seconds is not waited for: the error is raised instead."""

    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(
        self, attempt: int, retry_after: float | None, *, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 1), or None when
        no further attempt should be made."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jittered = (rng or random).uniform(0.0, ceiling)  # noqa: S311 - not for secrets
        return max(jittered, retry_after or 0.0)


NO_RETRY: Final = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())
