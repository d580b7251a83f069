"""`Client`: the same API for code without an event loop.

It runs an AsyncClient on a private event loop in a daemon thread and waits for each call, so
the two clients cannot drift apart, and it works inside a program that has its own loop
running elsewhere (a blocking call from within a running loop would deadlock; that is an
error here, use AsyncClient there).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from leadgate.client.async_client import AsyncClient
from leadgate.client.inputs import LeadCreate, LeadUpdate
from leadgate.client.models import Event, EventPage, Lead, LeadPage, Stage
from leadgate.client.retry import RetryPolicy

_T = TypeVar("_T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="leadgate-client", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError("Client blocks: inside a running event loop use AsyncClient")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def iterate(self, iterator: AsyncIterator[_T]) -> Generator[_T, None, None]:
        """The async iterator's items, each awaited on the loop thread."""
        try:
            while True:
                try:
                    yield self.run(_next(iterator))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None and self.loop.is_running():
                self.run(close())

    def finish(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a short clean-up from anywhere, a running event loop included (it needs only
        the private loop), then stop that loop and its thread."""
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()
        else:
            coroutine.close()
        self.stop()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()


async def _next(iterator: AsyncIterator[_T]) -> _T:
    return await anext(iterator)


class Leads:
    """`client.leads`: REST `/v1/leads` (see AsyncLeads for each method)."""

    def __init__(self, client: AsyncClient, loop: _LoopThread) -> None:
        self._c, self._loop = client, loop

    def list(
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
        return self._loop.run(
            self._c.leads.list(
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
        )

    def iterate(
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
    ) -> Generator[Lead, None, None]:
        return self._loop.iterate(
            self._c.leads.iterate(
                page_size=page_size,
                search=search,
                updated_since=updated_since,
                stage_id=stage_id,
                priority=priority,
                advisor_id=advisor_id,
                tag=tag,
                source=source,
            )
        )

    def get(self, lead_id: str) -> Lead:
        return self._loop.run(self._c.leads.get(lead_id))

    def create(
        self,
        fields: LeadCreate | Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Lead:
        return self._loop.run(self._c.leads.create(fields, idempotency_key=idempotency_key))

    def update(
        self,
        lead_id: str,
        fields: LeadUpdate | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> Lead:
        return self._loop.run(
            self._c.leads.update(lead_id, fields, idempotency_key=idempotency_key)
        )

    def move(self, lead_id: str, stage_id: str, *, idempotency_key: str | None = None) -> Lead:
        return self._loop.run(
            self._c.leads.move(lead_id, stage_id, idempotency_key=idempotency_key)
        )

    def assign(
        self, lead_id: str, advisor_id: str | None, *, idempotency_key: str | None = None
    ) -> Lead:
        return self._loop.run(
            self._c.leads.assign(lead_id, advisor_id, idempotency_key=idempotency_key)
        )


class Events:
    """`client.events`: REST `/v1/events`."""

    def __init__(self, client: AsyncClient, loop: _LoopThread) -> None:
        self._c, self._loop = client, loop

    def list(
        self, *, after: str | None = None, types: Sequence[str] | None = None, limit: int = 100
    ) -> EventPage:
        return self._loop.run(self._c.events.list(after=after, types=types, limit=limit))

    def iterate(
        self, *, after: str | None = None, types: Sequence[str] | None = None, page_size: int = 100
    ) -> Generator[Event, None, None]:
        return self._loop.iterate(
            self._c.events.iterate(after=after, types=types, page_size=page_size)
        )


class Client:
    """The gateway from blocking code. `with Client(url, api_key=…) as client:`; the same
    methods as AsyncClient, returning values instead of awaitables."""

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
        self._async = AsyncClient(
            base_url,
            api_key=api_key,
            token=token,
            retry=retry,
            reconnect=reconnect,
            timeout=timeout,
        )
        self._loop = _LoopThread()
        self.leads = Leads(self._async, self._loop)
        self.events = Events(self._async, self._loop)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.loop.is_closed():
            self._loop.finish(self._async.aclose())

    def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        return self._loop.run(
            self._async.graphql(
                query, variables, operation_name=operation_name, idempotency_key=idempotency_key
            )
        )

    def iterate_connection(
        self, query: str, variables: Mapping[str, Any] | None = None, *, connection: str
    ) -> Generator[Any, None, None]:
        return self._loop.iterate(
            self._async.iterate_connection(query, variables, connection=connection)
        )

    def stages(self) -> list[Stage]:
        return self._loop.run(self._async.stages())

    def lead_events(
        self,
        *,
        after: str | None = None,
        types: Sequence[str] | None = None,
        lead_id: str | None = None,
        stage_id: str | None = None,
    ) -> Generator[Event, None, None]:
        """`for event in client.lead_events(after=…)`: see AsyncClient.lead_events."""
        return self._loop.iterate(
            self._async.lead_events(after=after, types=types, lead_id=lead_id, stage_id=stage_id)
        )
