"""GraphQL over Server-Sent Events: the graphql-sse protocol, distinct connections mode.

For networks that block WebSockets. `POST /graphql` (a JSON body) or `GET /graphql` (query
parameters) with `Accept: text/event-stream` answers `200 text/event-stream`: one `event: next`
per result (`data:` the result as JSON), then `event: complete`. Authentication, the admission
gate, persisted documents (trusted-documents mode included) and the arguments are those of
every other transport; whatever is refused before execution comes as a `next` with `errors`
(the protocol: a 4xx would only make the client retry), then `complete`. Queries and
mutations work too (one `next`), mutations by POST only.

Resuming: each result of a subscription carries the SSE `id:` of the event it shows. A client
that reconnects with `Last-Event-ID` (a browser EventSource does by itself) gets that id as
the value of the variable its root field's `after` argument takes (`leadEvents(after: $after)`),
overriding the variable the request carries, so it resumes right after the last event it
received: no gap, no duplicate. A subscription without such a variable is refused when
`Last-Event-ID` is sent (resuming silently from "now" would lose events).

Streams are tracked like WebSockets (graphql/connections.py): a revoked credential ends its
streams with an UNAUTHENTICATED error, and at shutdown each stream gets a final `next` whose
error names the cursor to resume after (`extensions.after`, also its SSE `id:`), then
`complete`. A comment line every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from aiohttp import web
from graphql import FieldNode, OperationDefinitionNode, OperationType, VariableNode
from strawberry.schema.schema import StreamResult
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType as StrawberryOperation

from leadgate import keys
from leadgate.domain.errors import AppError, BadRequest
from leadgate.graphql import persisted
from leadgate.graphql.connections import (
    SHUTDOWN_CODE,
    SHUTDOWN_REASON,
    ConnectionRegistry,
    resume_message,
)
from leadgate.graphql.context import Context
from leadgate.graphql.encoding import encode
from leadgate.graphql.errors import annotate
from leadgate.graphql.gate import Refused
from leadgate.graphql.http import _params as request_params
from leadgate.graphql.schema import LeadgateSchema, RefusedResult
from leadgate.services.event_feed import Position

log = logging.getLogger(__name__)

EVENT_STREAM: Final = "text/event-stream"
KEEPALIVE_SECONDS: Final = 15.0
# How often a stream looks for a client that went away without a word.
DISCONNECT_POLL_SECONDS: Final = 0.5
REVOKED_MESSAGE: Final = "Unauthorized: the credential was revoked or has expired"
_GET: Final = frozenset({"query", "subscription"})
_POST: Final = frozenset({"query", "mutation", "subscription"})
_GET_TYPES: Final = (StrawberryOperation.QUERY,)
_POST_TYPES: Final = (StrawberryOperation.QUERY, StrawberryOperation.MUTATION)

ContextFactory = Callable[[web.Request, web.StreamResponse], Awaitable[Context]]


def wants_event_stream(request: web.Request) -> bool:
    """The client asks for an event stream (graphql-sse sends exactly this Accept)."""
    for part in request.headers.get("Accept", "").split(","):
        media, _, params = part.partition(";")
        if media.strip().lower() == EVENT_STREAM and params.replace(" ", "") != "q=0":
            return True
    return False


def frame(event: str, data: object = None, event_id: int | None = None) -> bytes:
    """One SSE message; JSON is one line, so `data:` needs no splitting."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = b"data: " + encode(data) if data is not None else b"data:"
    return f"{head}event: {event}\n".encode() + body + b"\n\n"


async def respond(
    request: web.Request,
    schema: LeadgateSchema,
    make_context: ContextFactory,
    streams: ConnectionRegistry,
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{EVENT_STREAM}; charset=utf-8",
            "Cache-Control": "no-cache",
            # nginx would otherwise buffer the stream.
            "X-Accel-Buffering": "no",
            "X-Request-Id": keys.request_id(request),
        }
    )
    context = await make_context(request, response)
    # Re-checked while the stream is open, as a WebSocket's credential is.
    context.authorization = request.headers.get("Authorization")
    results = await _results(request, schema, context)
    await response.prepare(request)
    stream = EventStream(request, response, context)
    context.connection = stream
    streams.add(stream)
    try:
        await stream.serve(results)
    finally:
        streams.discard(stream)
    return response


async def _results(request: web.Request, schema: LeadgateSchema, context: Context) -> StreamResult:
    get = request.method == "GET"
    try:
        params = await request_params(request)
        # Persisted documents and trusted-documents mode hold here too (registered over HTTP).
        document = await persisted.resolve(params, request.config_dict[keys.DOCUMENTS])
        query, name = document.query, params.get("operationName")
        admitted = schema.gate.admit(query, name, params.get("variables"), _GET if get else _POST)
        variables = _resumed(
            admitted.operation, params.get("variables"), request.headers.get("Last-Event-ID")
        )
    except Refused as refused:
        return _single(PreExecutionError(data=None, errors=refused.errors))
    except AppError as error:
        return _single(PreExecutionError(data=None, errors=Refused(error).errors))
    if admitted.operation.operation is OperationType.SUBSCRIPTION:
        return await schema.stream(
            query,
            variables,
            context,
            operation_name=name,
            allowed_operation_types=(StrawberryOperation.SUBSCRIPTION,),
        )
    allowed = _GET_TYPES if get else _POST_TYPES
    result = await schema.execute(
        query, variables, context, operation_name=name, allowed_operation_types=allowed
    )
    return _single(result)


def _resumed(
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
    last_event_id: str | None,
) -> dict[str, Any] | None:
    """The variables with Last-Event-ID as the root field's `after` (see the module doc)."""
    last_event_id = (last_event_id or "").strip()
    if not last_event_id or operation.operation is not OperationType.SUBSCRIPTION:
        return variables
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            for argument in selection.arguments or ():
                if argument.name.value == "after" and isinstance(argument.value, VariableNode):
                    return {**(variables or {}), argument.value.name.value: last_event_id}
    raise BadRequest(
        "Last-Event-ID resumes a subscription through its `after` argument: pass that as a "
        "variable, e.g. `subscription($after: ID) { leadEvents(after: $after) { id } }`"
    )


async def _single(result: ExecutionResult) -> StreamResult:
    yield result


class EventStream:
    """One open SSE response: the registry can re-check it and end it (TrackedConnection)."""

    def __init__(self, request: web.Request, response: web.StreamResponse, context: Context):
        self.context = context
        self.closing = False
        self._request = request
        self._response = response
        self._position: Position | None = None
        self._last_sent: int | None = None
        self._farewell: list[bytes] = []
        self._pump: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self._writing = asyncio.Lock()

    # --- TrackedConnection --------------------------------------------------------------

    def follow(self, position: Position) -> None:
        self._position = position

    def unfollow(self, position: Position) -> None:
        if self._position is position:
            self._position = None

    def close(self, code: int, reason: str) -> Coroutine[Any, Any, None]:
        """A revoked credential (the registry's 4401 for WebSockets)."""
        error = {"message": REVOKED_MESSAGE, "extensions": {"code": "UNAUTHENTICATED"}}
        return self._end([frame("next", {"errors": [error]}), frame("complete")])

    def go_away(self) -> Coroutine[Any, Any, None]:
        """Shutdown: the cursor to resume after, as the error's `after` and the SSE id."""
        cursor = self._cursor()
        extensions: dict[str, object] = {"code": SHUTDOWN_CODE}
        if cursor is not None:
            extensions["after"] = str(cursor)
        message = resume_message(cursor) if cursor is not None else SHUTDOWN_REASON
        error = {"message": message, "extensions": extensions}
        return self._end([frame("next", {"errors": [error]}, cursor), frame("complete")])

    # --- serving ------------------------------------------------------------------------

    async def serve(self, results: StreamResult) -> None:
        pump = self._pump = asyncio.create_task(self._send_results(results))
        watch = asyncio.create_task(self._watch(pump))
        try:
            await asyncio.wait({pump})
            if not pump.cancelled():
                failure = pump.exception()
                if failure is not None and not isinstance(failure, ConnectionError):
                    raise failure
            with contextlib.suppress(ConnectionError):
                for message in self._farewell:
                    await self._send(message)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)
            self._ended.set()

    def _end(self, farewell: list[bytes]) -> Coroutine[Any, Any, None]:
        # Decided now: nothing but the farewell is sent after this call.
        self.closing = True
        self._farewell = farewell
        if self._pump is not None:
            self._pump.cancel()
        return self._wait_ended()

    async def _wait_ended(self) -> None:
        await self._ended.wait()

    def _cursor(self) -> int | None:
        """Where a client resumes: past every event finished with, and every event sent."""
        known = [self._last_sent]
        if self._position is not None:
            known.append(self._position.event_id)
        ids = [i for i in known if i is not None]
        return max(ids) if ids else None

    async def _send_results(self, results: StreamResult) -> None:
        async with contextlib.aclosing(results):
            async for result in results:
                if self.closing:
                    return
                if not isinstance(result, ExecutionResult):
                    continue  # incremental delivery (@defer, @stream): not in this schema
                position = self._position
                event_id = position.delivering if position and result.data is not None else None
                await self._send(frame("next", self._body(result), event_id))
                if event_id is not None:
                    self._last_sent = event_id
        if not self.closing:
            await self._send(frame("complete"))

    def _body(self, result: ExecutionResult) -> dict[str, Any]:
        request_id = self.context.request_id
        body: dict[str, Any] = {}
        if not isinstance(result, PreExecutionError | RefusedResult):
            body["data"] = result.data
        if result.errors:
            formatted = []
            for error in result.errors:
                annotate(error, request_id)
                entry: dict[str, Any] = dict(error.formatted)
                entry["extensions"] = {**entry.get("extensions", {}), "requestId": request_id}
                formatted.append(entry)
            body["errors"] = formatted
        if self._position is None and self.context.response_extensions:
            # A query's or mutation's (cost, idempotentReplayed); not repeated per event.
            body["extensions"] = self.context.response_extensions
        return body

    async def _watch(self, pump: asyncio.Task[None]) -> None:
        """End the pump when the client has gone; keep an idle stream alive meanwhile."""
        idle = 0.0
        try:
            while not pump.done():
                await asyncio.sleep(DISCONNECT_POLL_SECONDS)
                transport = self._request.transport
                if transport is None or transport.is_closing():
                    break
                idle += DISCONNECT_POLL_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    await self._send(b":\n\n")
        except ConnectionError:
            pass
        pump.cancel()

    async def _send(self, data: bytes) -> None:
        async with self._writing:
            await self._response.write(data)
