"""Settings, read from the environment once and passed explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

# Seconds before each webhook retry: ten attempts over about 23 hours.
DEFAULT_RETRY_SCHEDULE: Final = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0)


@dataclass(frozen=True, slots=True)
class Settings:
    # repr=False: a DATABASE_URL may carry a password and must never reach a log.
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".leadgate")
    pool_min_size: int = 2
    pool_max_size: int = 10
    # Upper bound on how long a revoked key keeps working in another process.
    api_key_cache_seconds: float = 4.0
    # SIGTERM: how long in-flight requests (and WebSocket close handshakes) may take.
    shutdown_timeout_seconds: float = 10.0
    statement_timeout_ms: int = 15_000
    # How long a write waits for a row another write holds (same lead, same idempotency key)
    # before answering with a typed error instead of hanging.
    lock_timeout_ms: int = 2_000
    idempotency_ttl_seconds: float = 24 * 3600
    graphql_ws_legacy: bool = False
    access_log: bool = False
    # "json": one JSON object per log line (leadgate/logs.py); anything else: text.
    log_format: str = "text"
    # /metrics answers loopback clients only unless this is set (it reveals traffic and load).
    metrics_public: bool = False
    # Run queries through compiled plans (graphql/compiled.py); off = strawberry only.
    compiled_queries: bool = True
    # Webhooks: http and loopback targets only for local development (SSRF otherwise).
    allow_insecure_webhooks: bool = False
    # Seconds before each retry; attempts = len + 1. The default spans about a day.
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    webhook_timeout_seconds: float = 10.0
    # A claimed delivery is retried by any dispatcher once its lease ends (a killed process).
    webhook_lease_seconds: float = 60.0
    webhook_concurrency: int = 32
    # After rotateWebhookSecret the previous secret keeps signing beside the new one this long
    # (Standard Webhooks: receivers switch over without dropping a delivery).
    webhook_secret_overlap_seconds: float = 24 * 3600.0
    # Resolves webhook hosts underneath the SSRF vetting; None = the system resolver. Tests
    # answer with addresses they choose.
    webhook_resolver: AbstractResolver | None = field(default=None, repr=False, compare=False)
    dispatcher_enabled: bool = True
    graphiql_api_key: str | None = field(default=None, repr=False)
    # Abuse limits, all checked before any SQL runs (README "Limits").
    max_body_bytes: int = 1024 * 1024
    max_header_bytes: int = 8 * 1024
    max_document_tokens: int = 5_000
    max_depth: int = 10
    max_aliases: int = 30
    max_cost: int = 50_000
    # GraphiQL needs both; a locked-down production API may turn them off.
    introspection: bool = True
    suggestions: bool = True

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
            shutdown_timeout_seconds=float(env.get("LEADGATE_SHUTDOWN_TIMEOUT", "10")),
            graphql_ws_legacy=env.get("LEADGATE_GRAPHQL_WS_LEGACY", "") == "1",
            compiled_queries=env.get("LEADGATE_COMPILED_QUERIES", "1") != "0",
            access_log=env.get("LEADGATE_ACCESS_LOG", "") == "1",
            log_format=env.get("LEADGATE_LOG_FORMAT", "text"),
            metrics_public=env.get("LEADGATE_METRICS_PUBLIC", "") == "1",
            allow_insecure_webhooks=env.get("LEADGATE_ALLOW_INSECURE_WEBHOOKS", "") == "1",
            webhook_retry_schedule=_seconds(env.get("LEADGATE_WEBHOOK_RETRY_SCHEDULE"))
            or DEFAULT_RETRY_SCHEDULE,
            webhook_timeout_seconds=float(env.get("LEADGATE_WEBHOOK_TIMEOUT", "10")),
            webhook_lease_seconds=float(env.get("LEADGATE_WEBHOOK_LEASE", "60")),
            webhook_secret_overlap_seconds=float(
                env.get("LEADGATE_WEBHOOK_SECRET_OVERLAP", str(24 * 3600))
            ),
            dispatcher_enabled=env.get("LEADGATE_DISPATCHER", "1") != "0",
            max_body_bytes=int(env.get("LEADGATE_MAX_BODY_BYTES", str(1024 * 1024))),
            max_header_bytes=int(env.get("LEADGATE_MAX_HEADER_BYTES", str(8 * 1024))),
            max_document_tokens=int(env.get("LEADGATE_MAX_TOKENS", "5000")),
            max_depth=int(env.get("LEADGATE_MAX_DEPTH", "10")),
            max_aliases=int(env.get("LEADGATE_MAX_ALIASES", "30")),
            max_cost=int(env.get("LEADGATE_MAX_COST", "50000")),
            introspection=env.get("LEADGATE_INTROSPECTION", "1") != "0",
            suggestions=env.get("LEADGATE_SUGGESTIONS", "1") != "0",
        )


def _seconds(text: str | None) -> tuple[float, ...]:
    """ "5,30,120" → (5.0, 30.0, 120.0); empty or unset → ()."""
    return tuple(float(part) for part in (text or "").split(",") if part.strip())
