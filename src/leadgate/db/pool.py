"""The asyncpg pool: JSON codecs, statement timeout, statement counting."""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import asyncpg
import orjson
from asyncpg.pool import PoolAcquireContext

from leadgate.config import Settings
from leadgate.db.embedded import embedded_database_url
from leadgate.db.statements import StatementCounter

log = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return embedded_database_url(settings.embedded_pgdata)


def direct_database_url(settings: Settings) -> str:
    """PostgreSQL itself, never a pooler: for session state (LISTEN, session advisory locks)."""
    return settings.direct_database_url or database_url(settings)


# Under transaction pooling a connection's session is any server connection's, so these are
# PgBouncer's to set on its server connections (`connect_query`); the pool checks they hold.
_POOLED_SETTINGS: Final = """
SELECT name, setting
FROM pg_settings
WHERE name = ANY($1::text[])
"""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Reset nothing on release beyond asyncpg's own rollback of an open transaction.

    The default reset (UNLISTEN, RESET ALL, advisory unlock...) costs a round trip per
    release, three per GraphQL request, for session state this code never leaves behind:
    listening has its own connection, settings are fixed at connect, locks are per
    transaction (the migration lock is taken and released explicitly).
    """


def _session_settings(settings: Settings) -> dict[str, str]:
    return {
        "statement_timeout": str(settings.statement_timeout_ms),
        "lock_timeout": str(settings.lock_timeout_ms),
        # Statements with optional filters (`$n IS NULL OR ...`) need a plan for the values
        # at hand: a generic plan keeps every branch and misses the right index.
        "plan_cache_mode": "force_custom_plan",
    }


async def create_pool(
    settings: Settings, *, counter: StatementCounter | None = None, url: str | None = None
) -> asyncpg.Pool:
    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if counter is not None:
            conn.add_query_logger(counter)

    pooled = settings.behind_pooler
    # Behind PgBouncer in transaction mode a named prepared statement lives on one server
    # connection and the next transaction may get another (PgBouncer keeps them only from
    # 1.21, `max_prepared_statements`; Debian 12 has 1.18): unnamed statements only. PgBouncer
    # refuses startup parameters it does not know, and would not keep them per client anyway.
    # Unnamed statements are planned for their values each time, as plan_cache_mode asks.
    server_settings = {"application_name": "leadgate"}
    if not pooled:
        server_settings.update(_session_settings(settings))
    pool = MeasuredPool(
        url or database_url(settings),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        init=init,
        reset=_keep_session,
        # What asyncpg.create_pool passes by default (Pool itself has no defaults).
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        statement_cache_size=0 if pooled else 100,  # 100: asyncpg's default
        server_settings=server_settings,
    )
    await pool
    if pooled:
        await _check_pooled_settings(pool, settings)
    return pool


async def _check_pooled_settings(pool: asyncpg.Pool, settings: Settings) -> None:
    """Warn when the pooler's server connections lack the timeouts this process would set."""
    wanted = _session_settings(settings)
    del wanted["plan_cache_mode"]  # moot: unnamed statements get a custom plan anyway
    rows = await pool.fetch(_POOLED_SETTINGS, list(wanted))
    found = {r["name"]: r["setting"] for r in rows}
    for name, value in wanted.items():
        if found.get(name) != value:
            log.warning(
                "behind a pooler %s is %s, not %s: set it on PgBouncer's server connections "
                '(connect_query) or the database role (README "Running in production")',
                name,
                found.get(name),
                value,
            )


class MeasuredPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no type hints
    """asyncpg's pool, timing how long each `async with pool.acquire()` waits for a
    connection: the first sign of a pool too small for its load (exposed at /metrics)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquires = 0
        self.acquire_seconds = 0.0

    def acquire(self, *, timeout: float | None = None) -> _TimedAcquire:
        return _TimedAcquire(self, timeout)


class _TimedAcquire(PoolAcquireContext):  # type: ignore[misc]  # likewise
    __slots__ = ()

    async def __aenter__(self) -> asyncpg.Connection:
        started = time.perf_counter()
        try:
            return await super().__aenter__()
        finally:
            pool = self.pool
            pool.acquires += 1
            pool.acquire_seconds += time.perf_counter() - started
