"""Which database failures mean "unavailable, retry" rather than a bug.

The edges (GraphQL, REST, subscriptions) answer these with SERVICE_UNAVAILABLE (503,
`Retry-After`): the request may well succeed a moment later, on a new connection, after a
failover or once the server has finished restarting.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from leadgate.domain.errors import ServiceUnavailable

_UNAVAILABLE: Final = (
    # Class 08: the connection broke (or could not be made).
    asyncpg.PostgresConnectionError,
    # Class 57: administrator shutdown, crash recovery, "cannot connect now", and
    # query_canceled: a statement_timeout or pg_cancel_backend.
    asyncpg.exceptions.OperatorInterventionError,
    # Class 53: too many connections, out of memory or disk on the server.
    asyncpg.exceptions.InsufficientResourcesError,
    # The socket itself: refused, reset, or the pool's connection closed under us.
    ConnectionError,
)


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The retryable error `exc` stands for, or None when it is not a database outage."""
    if isinstance(exc, ServiceUnavailable):
        return exc
    if isinstance(exc, _UNAVAILABLE):
        return ServiceUnavailable()
    return None
