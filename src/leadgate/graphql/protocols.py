"""The WebSocket subprotocols /graphql speaks for subscriptions."""

from __future__ import annotations

from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from leadgate.config import Settings


def subscription_protocols(settings: Settings) -> tuple[str, ...]:
    # The legacy graphql-ws protocol has a history of auth bypasses: off unless asked for.
    if settings.graphql_ws_legacy:
        return (GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL)
    return (GRAPHQL_TRANSPORT_WS_PROTOCOL,)
