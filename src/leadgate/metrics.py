"""Prometheus metrics at /metrics: one registry per app (tests run several apps at once).

Requests are counted and timed by a middleware; what other parts already count (SQL
statements, compiled plans, subscribers, WebSocket connections, listener reconnects, the
pool) is read when scraped, so those parts know nothing of Prometheus. The webhook dispatcher
reports each attempt through its `observe` hook.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from leadgate import keys, request_context
from leadgate.db.pool import MeasuredPool
from leadgate.domain.errors import NotFound

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REQUEST_LABELS: Final = ("api", "operation", "status")
# A request whose client went away before it was answered (nginx's convention).
_CLIENT_CLOSED: Final = 499
# From a quick redelivery to the end of a day of retries.
_LAG_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400)
# A proxy on this host would make every client look local: a forwarded request is remote.
_FORWARDING_HEADERS: Final = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class PlanCounts(Protocol):
    """The compiled-plan counts of a schema (graphql/schema.py LeadgateSchema)."""

    plan_hits: int
    fallbacks: int


class Metrics:
    """The families this app exposes. `registry` holds them and the scrape-time collector."""

    def __init__(self, app: web.Application, plans: PlanCounts | None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadgate_http_requests",
            "HTTP requests answered, by API, GraphQL operation type and status.",
            _REQUEST_LABELS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadgate_http_request_duration_seconds",
            "Time to answer an HTTP request (a WebSocket: its whole connection).",
            _REQUEST_LABELS,
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "leadgate_webhook_attempts",
            "Webhook delivery attempts by outcome (succeeded, retrying, failed).",
            ("outcome",),
            registry=self.registry,
        )
        self.webhook_lag = Histogram(
            "leadgate_webhook_delivery_lag_seconds",
            "From an event's commit to its successful delivery to an endpoint.",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.fanout_lag = Histogram(
            "leadgate_subscription_lag_seconds",
            "From an event's write to its fan-out to this process's subscribers (the "
            "notification's way through PostgreSQL and the listener included).",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_AppState(app, plans))

    def observe_request(self, api: str, operation: str, status: int, seconds: float) -> None:
        labels = (api, operation, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def observe_webhook(self, outcome: str, lag_seconds: float) -> None:
        self.webhook_attempts.labels(outcome).inc()
        if outcome == "succeeded":
            self.webhook_lag.observe(lag_seconds)


class _AppState(Collector):
    """Counts and sizes kept by the app's own parts, read at scrape time."""

    def __init__(self, app: web.Application, plans: PlanCounts | None) -> None:
        self._app = app
        self._plans = plans

    def collect(self) -> Iterator[Metric]:
        app = self._app
        yield _counter(
            "leadgate_sql_statements",
            "SQL statements sent to PostgreSQL.",
            app[keys.STATEMENTS].total,
        )
        if self._plans is not None:
            yield _counter(
                "leadgate_graphql_plan_hits",
                "GraphQL operations answered by a compiled plan.",
                self._plans.plan_hits,
            )
            yield _counter(
                "leadgate_graphql_plan_fallbacks",
                "Compiled plans that handed an operation over to strawberry.",
                self._plans.fallbacks,
            )
        yield _gauge(
            "leadgate_websocket_connections",
            "Open GraphQL WebSocket connections.",
            len(app[keys.CONNECTIONS]),
        )
        feed = app.get(keys.EVENT_FEED)
        if feed is not None:
            # services/event_feed.py keeps them by organization; read, never changed, here.
            subscribers = sum(len(subs) for subs in feed._subscribers.values())
            yield _gauge("leadgate_subscribers", "Live subscriptions in this process.", subscribers)
        limiter = app.get(keys.RATE_LIMITER)
        if limiter is not None:
            refused = CounterMetricFamily(
                "leadgate_rate_limited",
                "Requests and operations refused over a rate limit, by policy.",
                labels=["policy"],
            )
            for policy in ("credential", "organization"):
                refused.add_metric([policy], limiter.refused[policy])
            yield refused
            yield _counter(
                "leadgate_rate_limit_store_failures",
                "Redis calls of the rate limiter that failed (each process then limits alone).",
                limiter.store_failures,
            )
        listener = app.get(keys.LISTENER)
        if listener is not None:
            yield _counter(
                "leadgate_listener_reconnects",
                "Times the LISTEN connection was re-established.",
                listener.reconnects,
            )
        # The primary's names predate the replica: a second set, not a label, keeps them.
        yield from _pool_metrics("leadgate_db_pool", "the pool", app.get(keys.POOL))
        yield from _pool_metrics(
            "leadgate_db_read_pool", "the read replica's pool", app.get(keys.READ_POOL)
        )


class _Pool(Protocol):
    """What is read of an asyncpg pool (asyncpg itself stays in db, store and services)."""

    def get_size(self) -> int: ...

    def get_idle_size(self) -> int: ...


def _pool_metrics(prefix: str, which: str, pool: _Pool | None) -> Iterator[Metric]:
    if pool is None:
        return
    yield _gauge(f"{prefix}_size", f"Connections open in {which}.", pool.get_size())
    yield _gauge(f"{prefix}_idle", f"Connections idle in {which}.", pool.get_idle_size())
    if isinstance(pool, MeasuredPool):
        wait = SummaryMetricFamily(
            f"{prefix}_acquire_wait_seconds",
            f"Time spent waiting for a connection of {which}.",
        )
        wait.add_metric([], count_value=pool.acquires, sum_value=pool.acquire_seconds)
        yield wait


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def install(app: web.Application, *, plans: PlanCounts | None) -> None:
    """Metrics for `app`: the registry, the /metrics route, the dispatcher's hook."""
    app[keys.METRICS] = Metrics(app, plans)
    app.router.add_get("/metrics", metrics_handler)
    app.on_startup.append(_observe_parts)


async def _observe_parts(app: web.Application) -> None:
    # on_startup runs after every cleanup context has started: the dispatcher and the feed
    # exist, and report to the registry through their hooks.
    dispatcher = app.get(keys.DISPATCHER)
    if dispatcher is not None:
        dispatcher.observe = app[keys.METRICS].observe_webhook
    feed = app.get(keys.EVENT_FEED)
    if feed is not None:
        feed.observe_lag = app[keys.METRICS].fanout_lag.observe


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus text format, to loopback clients or with LEADGATE_METRICS_PUBLIC=1."""
    if not (request.config_dict[keys.SETTINGS].metrics_public or _is_local(request)):
        raise NotFound("No such resource")
    body = generate_latest(request.config_dict[keys.METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _is_local(request: web.Request) -> bool:
    if any(name in request.headers for name in _FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@web.middleware
async def request_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    api = _api(request.path)
    if api is None:
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = _CLIENT_CLOSED
        raise
    finally:
        request.config_dict[keys.METRICS].observe_request(
            api, _operation(request, api), status, time.perf_counter() - started
        )


def _api(path: str) -> str | None:
    if path == "/graphql":
        return "graphql"
    if path == "/v1" or path.startswith("/v1/"):
        return "rest"
    return None  # health checks, scrapes, static files: not API traffic


def _operation(request: web.Request, api: str) -> str:
    if api == "rest":
        return "query" if request.method in ("GET", "HEAD") else "mutation"
    if web.WebSocketResponse().can_prepare(request).ok:
        return "subscription"
    context = request_context.current()
    operation = context.operation_type if context is not None else None
    return operation or "none"
