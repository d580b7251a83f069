"""Settings, read from the environment once and passed explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    # repr=False: a DATABASE_URL may carry a password and must never reach a log.
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".leadgate")
    pool_min_size: int = 2
    pool_max_size: int = 10
    # Upper bound on how long a revoked key keeps working in another process.
    api_key_cache_seconds: float = 4.0
    statement_timeout_ms: int = 15_000
    # How long a write waits for a row another write holds (same lead, same idempotency key)
    # before answering with a typed error instead of hanging.
    lock_timeout_ms: int = 2_000
    idempotency_ttl_seconds: float = 24 * 3600
    graphql_ws_legacy: bool = False
    graphiql_api_key: str | None = field(default=None, repr=False)

    @property
    def embedded_pgdata(self) -> Path:
        return self.data_dir / "pg"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("LEADGATE_DATA_DIR") or ".leadgate"),
            pool_min_size=int(env.get("LEADGATE_POOL_MIN", "2")),
            pool_max_size=int(env.get("LEADGATE_POOL_MAX", "10")),
            statement_timeout_ms=int(env.get("LEADGATE_STATEMENT_TIMEOUT_MS", "15000")),
            lock_timeout_ms=int(env.get("LEADGATE_LOCK_TIMEOUT_MS", "2000")),
            graphql_ws_legacy=env.get("LEADGATE_GRAPHQL_WS_LEGACY", "") == "1",
        )
