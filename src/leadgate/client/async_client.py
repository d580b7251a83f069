"""`AsyncClient`: the gateway's REST and GraphQL APIs from asyncio code."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

from leadgate.client.errors import LeadgateError
from leadgate.client.inputs import LeadCreate, LeadUpdate, body_of
from leadgate.client.models import Event, EventPage, Lead, LeadPage, Stage
from leadgate.client.retry import RetryPolicy
from leadgate.client.subscription import lead_events
from leadgate.client.transport import Transport, bearer

STAGES: Final = "{ stages { id stageKey stageLabel color semanticSlot position } }"


def _lead_path(lead_id: str) -> str:
    return f"/leads/{quote(str(lead_id), safe='')}"


def _list_params(
    *,
    page: int | None,
    limit: int,
    search: str | None,
    cursor: str | None,
    updated_since: datetime | None,
    stage_id: str | None,
    priority: str | None,
    advisor_id: str | None,
    tag: str | None,
    source: str | None,
) -> dict[str, str]:
    given: dict[str, Any] = {
        "page": page,
        "limit": limit,
        "search": search,
        "cursor": cursor,
        "updatedSince": updated_since.isoformat() if updated_since is not None else None,
        "stageId": stage_id,
        "priority": priority,
        "advisorId": advisor_id,
        "tag": tag,
        "source": source,
    }
    return {k: str(v) for k, v in given.items() if v is not None}


class AsyncLeads:
    """`client.leads`: REST `/v1/leads`."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def list(
        self,
        *,
        page: int | None = None,
        limit: int = 20,
        search: str | None = None,
        cursor: str | None = None,
        updated_since: datetime | None = None,
        stage_id: str | None = None,
        priority: str | None = None,
        advisor_id: str | None = None,
        tag: str | None = None,
        source: str | None = None,
    ) -> LeadPage:
        """One page: by `page` number (newest first), or the keyset page after `cursor` (a
        previous page's `next_cursor`); `updated_since` lists the leads changed since then,
        oldest change first."""
        params = _list_params(
            page=page,
            limit=limit,
            search=search,
            cursor=cursor,
            updated_since=updated_since,
            stage_id=stage_id,
            priority=priority,
            advisor_id=advisor_id,
            tag=tag,
            source=source,
        )
        response = await self._t.rest("GET", "/leads", params=params)
        return LeadPage.from_body(response.body)

    async def iterate(
        self,
        *,
        page_size: int = 100,
        search: str | None = None,
        updated_since: datetime | None = None,
        stage_id: str | None = None,
        priority: str | None = None,
        advisor_id: str | None = None,
        tag: str | None = None,
        source: str | None = None,
    ) -> AsyncGenerator[Lead, None]:
        """Every matching lead once, following keyset cursors page by page: leads written
        during the scan neither repeat nor push others out of it."""
        cursor: str | None = None
        while True:
            page = await self.list(
                limit=page_size,
                cursor=cursor,
                search=search,
                updated_since=updated_since,
                stage_id=stage_id,
                priority=priority,
                advisor_id=advisor_id,
                tag=tag,
                source=source,
            )
            for lead in page.leads:
                yield lead
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get(self, lead_id: str) -> Lead:
        response = await self._t.rest("GET", _lead_path(lead_id))
        return Lead.from_document(response.body["data"])

    async def create(
        self,
        fields: LeadCreate | Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Lead:
        """POST /v1/leads. Retried safely: one idempotency key for every attempt."""
        return await self._write("POST", "/leads", body_of(fields, {}), idempotency_key)

    async def update(
        self,
        lead_id: str,
        fields: LeadUpdate | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> Lead:
        """PATCH: fields left out are unchanged, fields set to None are cleared."""
        return await self._write("PATCH", _lead_path(lead_id), body_of(fields, {}), idempotency_key)

    async def move(
        self, lead_id: str, stage_id: str, *, idempotency_key: str | None = None
    ) -> Lead:
        path = _lead_path(lead_id) + "/move"
        return await self._write("POST", path, {"stageId": stage_id}, idempotency_key)

    async def assign(
        self, lead_id: str, advisor_id: str | None, *, idempotency_key: str | None = None
    ) -> Lead:
        """Assign to an advisor; None unassigns."""
        path = _lead_path(lead_id) + "/assign"
        return await self._write("POST", path, {"advisorId": advisor_id}, idempotency_key)

    async def _write(
        self, method: str, path: str, body: dict[str, Any], idempotency_key: str | None
    ) -> Lead:
        response = await self._t.rest(
            method, path, body=body, write=True, idempotency_key=idempotency_key
        )
        return Lead.from_document(response.body["data"])


class AsyncEvents:
    """`client.events`: REST `/v1/events` (the last 30 days, oldest first)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def list(
        self, *, after: str | None = None, types: Sequence[str] | None = None, limit: int = 100
    ) -> EventPage:
        params = {"limit": str(limit)}
        if after is not None:
            params["after"] = after
        if types:
            params["types"] = ",".join(types)
        response = await self._t.rest("GET", "/events", params=params)
        return EventPage.from_body(response.body)

    async def iterate(
        self, *, after: str | None = None, types: Sequence[str] | None = None, page_size: int = 100
    ) -> AsyncGenerator[Event, None]:
        """Every event after `after` that exists now, page by page."""
        while True:
            page = await self.list(after=after, types=types, limit=page_size)
            for event in page.events:
                yield event
            if not page.events:
                return
            after = page.next_after


class AsyncClient:
    """The gateway from asyncio code. `async with AsyncClient(url, api_key=…) as client:`.

    `retry` bounds the retries of 429, 503 and 409 IDEMPOTENCY_KEY_IN_USE answers and lost
    connections; `reconnect` bounds a subscription's consecutive failed reconnections.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        reconnect: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._transport = Transport(
            base_url, bearer(api_key, token), retry=retry or RetryPolicy(), timeout=timeout
        )
        self._reconnect = reconnect or RetryPolicy(max_attempts=8)
        self.leads = AsyncLeads(self._transport)
        self.events = AsyncEvents(self._transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.close()

    async def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The `data` of a GraphQL request; any error raises (LeadgateError by its code, with
        every error and the partial data on it). A mutation is retried after a 503 only with
        an `idempotency_key` (sent as the Idempotency-Key header: one mutation field)."""
        response = await self._transport.graphql(
            query, variables, operation_name=operation_name, idempotency_key=idempotency_key
        )
        return response.body["data"]

    async def iterate_connection(
        self, query: str, variables: Mapping[str, Any] | None = None, *, connection: str
    ) -> AsyncGenerator[Any, None]:
        """Every node of a Relay connection (e.g. `leadsConnection`), page after page: `query`
        takes `$after: String` and selects `<connection> { pageInfo { hasNextPage endCursor }
        edges { node { … } } }` at the top level."""
        after: str | None = None
        while True:
            data = await self.graphql(query, {**(variables or {}), "after": after})
            found = data.get(connection) if isinstance(data, Mapping) else None
            if not isinstance(found, Mapping):
                raise LeadgateError("BAD_REQUEST", f"the response has no {connection!r} field")
            for edge in found["edges"]:
                yield edge["node"]
            info = found["pageInfo"]
            if not info["hasNextPage"]:
                return
            after = info["endCursor"]

    async def stages(self) -> list[Stage]:
        """The pipeline, in order."""
        data = await self.graphql(STAGES)
        return [Stage.from_document(s) for s in data["stages"]]

    def lead_events(
        self,
        *,
        after: str | None = None,
        types: Sequence[str] | None = None,
        lead_id: str | None = None,
        stage_id: str | None = None,
    ) -> AsyncGenerator[Event, None]:
        """`async for event in client.lead_events(after=…)`: every event after `after`, then
        live ones, resumed with the last event's id across disconnections (a 4401 raises
        Unauthenticated)."""
        return lead_events(
            self._transport,
            after=after,
            types=types,
            lead_id=lead_id,
            stage_id=stage_id,
            reconnect=self._reconnect,
        )
