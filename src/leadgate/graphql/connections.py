"""This process's open subscription connections: re-authenticated while open, closed on
revocation and at shutdown (issue 8 #2, #9).

Every second one shared ticker re-authenticates each distinct credential of the open
connections through the Authenticator's cache (a revoked key fails within
`api_key_cache_seconds`, like HTTP), and closes that credential's connections with 4401.
At shutdown every connection is closed with 1001; each of its subscriptions first gets a
final `error` frame whose `extensions.after` names the cursor to resume from, and the close
reason names the smallest of them: `server shutting down; resume with after: "123"`.

A decision to close is taken synchronously and gates every later send: a delivery whose
completion was still running when the decision fell is dropped, never sent after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Final, Protocol, cast

from strawberry.aiohttp.views import AiohttpWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage, StartMessage

from leadgate import keys
from leadgate.domain.errors import AppError, Unauthenticated
from leadgate.envelope import graphql_error
from leadgate.graphql import persisted
from leadgate.graphql.context import Context
from leadgate.services.auth import Authenticator
from leadgate.services.event_feed import Position

log = logging.getLogger(__name__)

# With the Authenticator's 4 s cache: a revoked key stops streaming within 5 s.
RECHECK_SECONDS: Final = 1.0
CLOSE_REVOKED: Final = 4401
REVOKED_REASON: Final = "credential revoked"
CLOSE_GOING_AWAY: Final = 1001
SHUTDOWN_REASON: Final = "server shutting down"
SHUTDOWN_CODE: Final = "SERVICE_UNAVAILABLE"
# How long shutdown waits for clients to answer the close before moving on.
CLOSE_GRACE_SECONDS: Final = 1.0


def resume_message(cursor: int) -> str:
    return f'{SHUTDOWN_REASON}; resume with after: "{cursor}"'


class TrackedConnection(Protocol):
    """What the registry and the subscription resolver use of a connection."""

    @property
    def context(self) -> Context: ...

    @property
    def closing(self) -> bool: ...

    def follow(self, position: Position) -> None:
        """Report `position` as the cursor of the subscription running in this task."""

    def unfollow(self, position: Position) -> None: ...

    def close(self, code: int, reason: str) -> Coroutine[Any, Any, None]:
        """Decide to close now (nothing is sent after this call); the coroutine closes."""

    def go_away(self) -> Coroutine[Any, Any, None]:
        """Decide to close for shutdown, tell each subscription its cursor, close with 1001."""


class ConnectionRegistry:
    """The open connections of one app, and the ticker that re-checks their credentials."""

    def __init__(self) -> None:
        self._open: set[TrackedConnection] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, connection: TrackedConnection) -> None:
        self._open.add(connection)

    def discard(self, connection: TrackedConnection) -> None:
        self._open.discard(connection)

    def connections(self) -> list[TrackedConnection]:
        return list(self._open)

    async def watch(self, authenticator: Authenticator) -> None:
        """Re-check every open connection's credential each RECHECK_SECONDS, until cancelled."""
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            try:
                await self.recheck(authenticator)
            except Exception:
                log.exception("re-checking subscription credentials failed")

    async def recheck(self, authenticator: Authenticator) -> int:
        """Close the connections whose credential no longer authenticates; how many."""
        by_credential: dict[str, list[TrackedConnection]] = {}
        for connection in self._open:
            credential = connection.context.authorization
            if credential is not None and not connection.closing:
                by_credential.setdefault(credential, []).append(connection)
        valid = await asyncio.gather(*(_still_valid(authenticator, c) for c in by_credential))
        closed = 0
        for connections, ok in zip(by_credential.values(), valid, strict=True):
            if ok:
                continue
            for connection in connections:
                if not connection.closing:
                    self._spawn(connection.close(CLOSE_REVOKED, REVOKED_REASON))
                    closed += 1
        return closed

    async def close_all(self) -> None:
        """Shutdown: every connection closed with 1001 and its cursors.

        Handlers end as soon as their close is sent, so the server's wait for in-flight
        requests covers them; the clients' close replies get a short grace on top."""
        for connection in list(self._open):
            if not connection.closing:
                self._spawn(connection.go_away())
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=CLOSE_GRACE_SECONDS)

    def _spawn(self, closing: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _still_valid(authenticator: Authenticator, credential: str) -> bool:
    try:
        await authenticator.authenticate(credential)
    except Unauthenticated:
        return False
    except Exception:  # noqa: BLE001 - a database hiccup is not a revocation
        log.warning("could not re-check a subscription credential", exc_info=True)
    return True


class _Viewed(Protocol):
    connections: ConnectionRegistry


class _Tracking:
    """What both protocols' connections add to strawberry's handlers: a closing gate, and
    where each of their subscriptions can resume."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closing = False
        self._positions: dict[asyncio.Task[Any], Position] = {}

    def follow(self, position: Position) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        for done in [t for t in self._positions if t.done()]:
            del self._positions[done]
        self._positions[task] = position

    def unfollow(self, position: Position) -> None:
        for task in [t for t, p in self._positions.items() if p is position]:
            del self._positions[task]

    def _cursors(self, operations: Mapping[str, asyncio.Task[Any] | None]) -> dict[str, int]:
        """Each open subscription's resume cursor, by operation id."""
        cursors = {}
        for operation_id, task in operations.items():
            position = self._positions.get(task) if task is not None else None
            if position is not None and position.event_id is not None:
                cursors[operation_id] = position.event_id
        return cursors


def _farewell_error(cursor: int) -> dict[str, object]:
    return {
        "message": resume_message(cursor),
        "extensions": {"code": SHUTDOWN_CODE, "after": str(cursor)},
    }


def _close_reason(cursors: Iterable[int]) -> str:
    # The smallest cursor is a safe resume point for every subscription of the connection.
    lowest = min(cursors, default=None)
    return SHUTDOWN_REASON if lowest is None else resume_message(lowest)


class TransportWSConnection(_Tracking, BaseGraphQLTransportWSHandler[Context, None]):
    """A graphql-transport-ws connection the registry can re-check and close."""

    async def handle(self) -> None:
        await _registered(self, super().handle)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload: object = message.get("payload")
        if self.connection_acknowledged and isinstance(payload, dict):
            try:
                payload = await _resolved(self.websocket, payload)
            except AppError as refused:
                error = graphql_error(refused, self.context.request_id)
                await self.send_message(
                    cast("Message", {"id": message["id"], "type": "error", "payload": [error]})
                )
                return
            message = cast("SubscribeMessage", {**message, "payload": payload})
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Queries over the socket read afresh too, not through an earlier operation's loaders.
        self.context.renew_loaders()
        await super().run_operation(operation)

    async def send_message(self, message: Message) -> None:
        if self.closing:
            return
        await super().send_message(message)

    def close(self, code: int, reason: str) -> Coroutine[Any, Any, None]:
        self.closing = True
        return self.websocket.close(code, reason)

    def go_away(self) -> Coroutine[Any, Any, None]:
        self.closing = True
        cursors = self._cursors({i: op.task for i, op in self.operations.items()})
        frames: list[Mapping[str, object]] = [
            {"id": operation_id, "type": "error", "payload": [_farewell_error(cursor)]}
            for operation_id, cursor in cursors.items()
        ]
        return _send_and_close(self, frames, _close_reason(cursors.values()))


class LegacyWSConnection(_Tracking, BaseGraphQLWSHandler[Context, None]):
    """The same for the legacy graphql-ws protocol (off unless a setting enables it)."""

    async def handle(self) -> None:
        await _registered(self, super().handle)

    async def handle_start(self, message: StartMessage) -> None:
        payload: object = message.get("payload")
        if self.connection_acknowledged and isinstance(payload, dict):
            try:
                payload = await _resolved(self.websocket, payload)
            except AppError as refused:
                error = graphql_error(refused, self.context.request_id)
                frame = {"type": "error", "id": message["id"], "payload": error}
                await self.send_message(cast("OperationMessage", frame))
                return
            message = cast("StartMessage", {**message, "payload": payload})
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        self.context.renew_loaders()
        await super().handle_async_results(operation_id, query, operation_name, variables)

    async def send_message(self, message: OperationMessage) -> None:
        if self.closing:
            return
        await super().send_message(message)

    def close(self, code: int, reason: str) -> Coroutine[Any, Any, None]:
        self.closing = True
        return self.websocket.close(code, reason)

    def go_away(self) -> Coroutine[Any, Any, None]:
        self.closing = True
        cursors = self._cursors(self.tasks)
        frames: list[Mapping[str, object]] = [
            {"type": "error", "id": operation_id, "payload": _farewell_error(cursor)}
            for operation_id, cursor in cursors.items()
        ]
        return _send_and_close(self, frames, _close_reason(cursors.values()))


async def _registered(
    connection: TransportWSConnection | LegacyWSConnection,
    handle: Callable[[], Awaitable[None]],
) -> None:
    """Run the protocol's handler with the connection in the view's registry meanwhile."""
    registry = cast("_Viewed", connection.view).connections
    connection.context.connection = connection
    registry.add(connection)
    try:
        await handle()
    finally:
        registry.discard(connection)


async def _resolved(websocket: object, payload: dict[str, Any]) -> dict[str, Any]:
    """An operation's payload with the text it runs as its `query`: persisted documents and
    trusted-documents mode hold over the socket too (documents are registered over HTTP)."""
    app = cast("AiohttpWebSocketAdapter", websocket).request.config_dict
    document = await persisted.resolve(payload, app[keys.DOCUMENTS])
    return {**payload, "query": document.query}


async def _send_and_close(
    connection: TransportWSConnection | LegacyWSConnection,
    frames: list[Mapping[str, object]],
    reason: str,
) -> None:
    # Past the closing gate on purpose: these are the connection's last words.
    with contextlib.suppress(WebSocketDisconnected):
        for frame in frames:
            await connection.websocket.send_json(frame)
    await connection.websocket.close(CLOSE_GOING_AWAY, reason)
