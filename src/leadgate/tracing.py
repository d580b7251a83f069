"""OpenTelemetry tracing, optional: `pip install 'leadgate[otel]'`.

On when `LEADGATE_TRACING=1` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`enabled`); otherwise
nothing here imports opentelemetry, so a plain install runs without it. Each app gets its own
TracerProvider, never the global one: tests run several apps in one process.

- A SERVER span per API request (`request_span_middleware`), the child of an incoming W3C
  `traceparent`, named after the GraphQL operation (`query Leads`) or the REST route
  (`GET /v1/leads/{lead_id}`). Attributes come from the request context the logs and metrics
  already read; never a header, a query string or variables (credentials travel in those).
- A CLIENT span per SQL statement inside a trace, from asyncpg's query logger (the statement
  counter's own hook): opentelemetry-instrumentation-asyncpg patches asyncpg's classes for the
  whole process with one provider, which would send one app's statements to another's.
- A CLIENT span per webhook POST (opentelemetry-instrumentation-aiohttp-client, a trace
  config on the webhook session, so per provider too), whose `traceparent` the receiver gets.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web
from yarl import URL

from leadgate import keys, metrics, request_context
from leadgate.db.statements import StatementCounter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A request whose client went away before it was answered (as metrics.py counts it).
_CLIENT_CLOSED: Final = 499
_INSTRUMENTATION: Final = "leadgate"


def enabled(setting: bool | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    """`setting` (Settings.tracing, from LEADGATE_TRACING) decides when given, so `0` turns
    tracing off despite an endpoint; otherwise an OTLP endpoint turns it on.
    `OTEL_SDK_DISABLED=true` always wins."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if setting is not None:
        return setting
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


class Tracing:
    """This app's provider and tracer, and the spans it makes of requests and statements."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(_INSTRUMENTATION)
        # W3C trace context only: incoming baggage is not ours to forward to webhook receivers.
        self._propagator = TraceContextTextMapPropagator()

    async def serve(self, request: web.Request, handler: Handler, api: str) -> web.StreamResponse:
        from opentelemetry.trace import SpanKind

        parent = self._propagator.extract(request.headers)
        # Named once the handler has run: only then is the GraphQL operation known.
        with self.tracer.start_as_current_span(
            f"{request.method} {api}", context=parent, kind=SpanKind.SERVER
        ) as span:
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
                _describe(span, request, api, status)

    def trace_config(self) -> aiohttp.TraceConfig:
        from opentelemetry.instrumentation.aiohttp_client import create_trace_config
        from opentelemetry.metrics import NoOpMeterProvider

        return create_trace_config(
            url_filter=_public_url,
            tracer_provider=self.provider,
            # Webhook attempts are counted by metrics.py (Prometheus), not by OpenTelemetry.
            meter_provider=NoOpMeterProvider(),
        )


def _describe(span: Span, request: web.Request, api: str, status: int) -> None:
    from opentelemetry.trace import Status, StatusCode

    attributes: dict[str, str | int] = {
        "leadgate.api": api,
        "http.request.method": request.method,
        "http.response.status_code": status,
        "leadgate.request_id": keys.request_id(request),
    }
    principal = request.get(keys.PRINCIPAL)
    if principal is not None:
        attributes["leadgate.organization_id"] = str(principal.organization_id)
    if api == "graphql":
        operation_type = metrics._operation(request, api)
        context = request_context.current()
        operation_name = context.operation_name if context is not None else None
        if operation_type != "none":
            attributes["graphql.operation.type"] = operation_type
            name = operation_type
            if operation_name:
                attributes["graphql.operation.name"] = operation_name
                name = f"{operation_type} {operation_name}"
            span.update_name(name)
        else:  # refused before an operation was admitted
            span.update_name(f"{request.method} {request.path}")
    else:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        if route is not None:
            attributes["http.route"] = route
        span.update_name(f"{request.method} {route}" if route else request.method)
    span.set_attributes(attributes)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _public_url(url: URL) -> str:
    # An endpoint URL may carry a token in its user info or query: the span keeps neither.
    return str(url.with_user(None).with_query(None).with_fragment(None))


class TracedStatements(StatementCounter):
    """The statement counter, which also records a span per statement run inside a trace.

    asyncpg calls its query loggers with `call_soon` in a copy of the running context, so
    the current span is that of the code that ran the statement; the span is made afterwards
    from the elapsed time asyncpg measured. Outside a trace (the dispatcher's polling, the
    idempotency purge) no span is made: a root span per poll would only be noise."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Tracer, *, total: int = 0) -> None:
        super().__init__()
        self.total = total
        self._tracer = tracer

    def __call__(self, record: Any) -> None:
        super().__call__(record)
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        if not trace.get_current_span().get_span_context().is_valid:
            return
        query: str = record.query
        verb = query.split(None, 1)[0].upper() if query.strip() else "SQL"
        end = time.time_ns()
        span = self._tracer.start_span(
            verb,
            kind=SpanKind.CLIENT,
            start_time=end - int(record.elapsed * 1e9),
            # Statements are module-level constants with $n parameters (STYLE.md): the text
            # holds no value a caller sent. The parameters are never recorded.
            attributes={
                "db.system.name": "postgresql",
                "db.operation.name": verb,
                "db.query.text": query,
            },
        )
        if record.exception is not None:
            span.set_status(Status(StatusCode.ERROR, type(record.exception).__name__))
        span.end(end_time=end)


TRACING: Final[web.AppKey[Tracing]] = web.AppKey("tracing")


def install(app: web.Application, *, exporter: SpanExporter | None = None) -> Tracing:
    """Trace `app` (before it starts): spans go to `exporter` as each ends (tests), or by
    default in batches to the OTLP/HTTP endpoint the OTEL_EXPORTER_OTLP_* variables name."""
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "tracing is on (LEADGATE_TRACING or OTEL_EXPORTER_OTLP_ENDPOINT) but OpenTelemetry "
            "is not installed: pip install 'leadgate[otel]'"
        ) from exc
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "leadgate")})
    provider = TracerProvider(resource=resource)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = app[TRACING] = Tracing(provider)
    app[keys.STATEMENTS] = TracedStatements(tracing.tracer, total=app[keys.STATEMENTS].total)
    app.on_cleanup.append(_shut_down)
    return tracing


async def _shut_down(app: web.Application) -> None:
    # After every cleanup context (aiohttp runs those first): their last spans are flushed.
    # Off the loop: a batch export to an unreachable collector blocks until its timeout.
    await asyncio.to_thread(app[TRACING].provider.shutdown)


def trace_configs(app: web.Application) -> list[aiohttp.TraceConfig]:
    """For the webhook session: a span and a `traceparent` per send when `app` is traced."""
    tracing = app.get(TRACING)
    return [] if tracing is None else [tracing.trace_config()]


@web.middleware
async def request_span_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A span per API request when tracing is installed; otherwise only a lookup."""
    tracing = request.config_dict.get(TRACING)
    api = metrics._api(request.path) if tracing is not None else None
    if tracing is None or api is None:
        return await handler(request)
    return await tracing.serve(request, handler, api)
