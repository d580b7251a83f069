"""Which request the running code serves: read by log records and request metrics.

A contextvar, so that code deep in a request (a resolver, a service) logs with the request's
id and caller without being handed them. aiohttp runs each request in its own task, so what
one request sets here is never seen by another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from leadgate.domain.models import Principal


def _nobody() -> Principal | None:
    return None


@dataclass(slots=True)
class RequestContext:
    request_id: str
    # Looked up when a record is written: authentication runs after the context is opened.
    principal: Callable[[], Principal | None] = _nobody
    started: float = field(default_factory=time.perf_counter)
    # What the GraphQL document turned out to be, once the gate has admitted it.
    operation_type: str | None = None
    operation_name: str | None = None
    # The response's status, once the handler has answered.
    status: int | None = None


_CURRENT: ContextVar[RequestContext | None] = ContextVar("leadgate_request", default=None)


def current() -> RequestContext | None:
    return _CURRENT.get()


def begin(context: RequestContext) -> None:
    _CURRENT.set(context)


def note_operation(operation_type: str, operation_name: str | None) -> None:
    """The admitted GraphQL operation of the current request (a no-op outside requests)."""
    context = _CURRENT.get()
    if context is not None:
        context.operation_type = operation_type
        context.operation_name = operation_name
