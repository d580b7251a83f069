"""Log records that name their request: text, or one JSON object per line.

`LEADGATE_LOG_FORMAT=json` (`configure`) writes each record as a JSON object with its time,
level, logger and message, and, inside a request, its request id, organization, credential,
GraphQL operation name, status and duration so far. The access log (`LEADGATE_ACCESS_LOG=1`)
is written inside its request, so it carries the same fields in either format.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from leadgate import keys, request_context
from leadgate.domain.models import Principal
from leadgate.request_context import RequestContext

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What a record gets from its request; "-" (text) or absent (JSON) outside requests.
REQUEST_FIELDS: Final = (
    "request_id",
    "organization",
    "credential_id",
    "operation_name",
    "status",
    "duration_ms",
)
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Open this request's context (after request_id_middleware has chosen its id).

    Not reset on the way out: aiohttp writes the access log after the middlewares return, in
    the request's own task, whose context ends with it."""
    request_context.begin(
        RequestContext(request_id=keys.request_id(request), principal=_principal_of(request))
    )
    response = await handler(request)
    context = request_context.current()
    if context is not None:
        context.status = response.status
    return response


def _principal_of(request: web.Request) -> Callable[[], Principal | None]:
    return lambda: request.get(keys.PRINCIPAL)


class RequestFields(logging.Filter):
    """Adds REQUEST_FIELDS to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _fields(request_context.current()).items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def _fields(context: RequestContext | None) -> dict[str, object]:
    if context is None:
        return dict.fromkeys(REQUEST_FIELDS)
    principal = context.principal()
    return {
        "request_id": context.request_id,
        "organization": str(principal.organization_id) if principal else None,
        # "api_key:<id>" or "user:<sub>": which credential acted, never the credential itself.
        "credential_id": f"{principal.actor.type}:{principal.actor.id}"
        if principal and principal.actor
        else None,
        "operation_name": context.operation_name,
        "status": context.status,
        "duration_ms": round((time.perf_counter() - context.started) * 1000, 3),
    }


class TextFormatter(logging.Formatter):
    """The classic line, with the request id (or "-") after the logger name."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is not None:
            return super().format(record)
        # Only for this line: another handler may format the same record as JSON.
        record.request_id = "-"
        try:
            return super().format(record)
        finally:
            record.request_id = None


class JsonFormatter(logging.Formatter):
    """One JSON object per record; request fields only when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure(log_format: str, *, level: int = logging.INFO) -> None:
    """The root logger for `leadgate serve`: stderr, text or JSON, with request fields."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestFields())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
