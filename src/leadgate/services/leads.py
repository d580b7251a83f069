"""Reading leads, stages and advisors for a principal."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from leadgate.domain.errors import NotFound
from leadgate.domain.models import (
    Advisor,
    Lead,
    LeadEvent,
    LeadPage,
    LeadQuery,
    LeadRecord,
    Principal,
    Stage,
)
from leadgate.domain.paging import EventQuery, KeysetPage, KeysetQuery
from leadgate.store import catalog, events, leads


class LeadReader:
    """Every read is scoped to the principal's organization: there is no other way in.

    `page`, `slice` and `record` (the top-level `leads`/`leadsConnection`/`lead` fields and
    GET /v1/leads(/{id})) read `read_pool`, a replica a second behind at worst. The rest reads
    the primary: the loaders also resolve a mutation's payload (a lead just written, its
    history), and the events feed's `after` cursor must never skip a committed event.

    A searched or filtered total is exact up to `exact_total_limit` leads, an estimate past it
    (LEADGATE_EXACT_TOTAL_LIMIT): the pages say which.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        read_pool: asyncpg.Pool | None = None,
        *,
        exact_total_limit: int,
    ) -> None:
        self._pool = pool
        self._read_pool = read_pool or pool
        self._exact_total_limit = exact_total_limit

    async def page(self, principal: Principal, query: LeadQuery) -> LeadPage:
        async with self._read_pool.acquire() as conn:
            return await leads.leads_page(
                conn, principal.organization_id, query, exact_limit=self._exact_total_limit
            )

    async def slice(self, principal: Principal, query: KeysetQuery) -> KeysetPage:
        """A keyset slice: stable under concurrent writes, unlike an offset page."""
        async with self._read_pool.acquire() as conn:
            return await leads.leads_slice(
                conn, principal.organization_id, query, exact_limit=self._exact_total_limit
            )

    async def record(self, principal: Principal, lead_id: UUID) -> LeadRecord:
        """The lead with its stage and advisor, in one query."""
        async with self._read_pool.acquire() as conn:
            record = await leads.lead_record(conn, principal.organization_id, lead_id)
        if record is None:
            raise NotFound("Lead not found")
        return record

    async def leads_by_id(self, principal: Principal, ids: Sequence[UUID]) -> dict[UUID, Lead]:
        async with self._pool.acquire() as conn:
            return await leads.leads_by_id(conn, principal.organization_id, ids)

    async def history(
        self, principal: Principal, lead_ids: Sequence[UUID], limit: int
    ) -> dict[UUID, list[LeadEvent]]:
        async with self._pool.acquire() as conn:
            return await events.history(conn, principal.organization_id, list(lead_ids), limit)

    async def events(self, principal: Principal, query: EventQuery) -> list[LeadEvent]:
        async with self._pool.acquire() as conn:
            return await events.events_after(
                conn, principal.organization_id, query.after, types=query.types, limit=query.limit
            )

    async def stages(self, principal: Principal) -> list[Stage]:
        async with self._pool.acquire() as conn:
            return await catalog.stages(conn, principal.organization_id)

    async def advisors(self, principal: Principal) -> list[Advisor]:
        async with self._pool.acquire() as conn:
            return await catalog.advisors(conn, principal.organization_id)

    async def stages_by_id(self, principal: Principal, ids: Sequence[UUID]) -> dict[UUID, Stage]:
        async with self._pool.acquire() as conn:
            return await catalog.stages_by_id(conn, principal.organization_id, ids)

    async def advisors_by_id(
        self, principal: Principal, ids: Sequence[UUID]
    ) -> dict[UUID, Advisor]:
        async with self._pool.acquire() as conn:
            return await catalog.advisors_by_id(conn, principal.organization_id, ids)
