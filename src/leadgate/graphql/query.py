"""Query root: leads, leadsConnection, lead, stages, advisors."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

import strawberry

from leadgate.domain import models, paging
from leadgate.domain.errors import FieldError, ValidationFailed
from leadgate.domain.ids import parse_uuid
from leadgate.graphql.arguments import target_id
from leadgate.graphql.connection import LeadConnection
from leadgate.graphql.context import Info
from leadgate.graphql.inputs import ExternalIdInput
from leadgate.graphql.types import (
    Advisor,
    Lead,
    LeadEvent,
    LeadPage,
    LeadPriority,
    LeadSource,
    Stage,
)


@strawberry.input(description="Narrows `leads`; every given criterion must hold.")
class LeadFilter:
    stage_id: strawberry.ID | None = None
    priority: LeadPriority | None = None
    advisor_id: strawberry.ID | None = strawberry.field(
        default=None, description="The primary advisor"
    )
    tag: str | None = None
    source: LeadSource | None = None
    external_id: ExternalIdInput | None = strawberry.field(
        default=None, description="The lead holding this id in another system"
    )

    def to_model(self) -> models.LeadFilter:
        errors: list[FieldError] = []
        ids = {}
        for name, value in (("stageId", self.stage_id), ("advisorId", self.advisor_id)):
            parsed = parse_uuid(value) if value is not None else None
            if value is not None and parsed is None:
                errors.append(FieldError(f"filter.{name}", "must be a UUID"))
            ids[name] = parsed
        if errors:
            raise ValidationFailed(errors)
        return models.LeadFilter(
            stage_id=ids["stageId"],
            priority=self.priority,
            advisor_id=ids["advisorId"],
            tag=self.tag,
            source=self.source,
            external_id=_external_id(self.external_id),
        )


def _external_id(given: ExternalIdInput | None) -> tuple[str, str] | None:
    if given is None:
        return None
    key = given.to_key("filter.externalId")
    return (key.system, key.id)


def _lead_filter(given: LeadFilter | None, include_archived: bool) -> models.LeadFilter:
    model = given.to_model() if given is not None else models.LeadFilter()
    return dataclasses.replace(model, include_archived=include_archived)


INCLUDE_ARCHIVED = strawberry.argument(
    description="Archived leads too (archiveLead hides them otherwise; issue 12 #2)"
)


@strawberry.type
class Query:
    @strawberry.field(description="The organization's leads, newest first; limit is 1-100.")
    async def leads(
        self,
        info: Info,
        page: int = 1,
        limit: int = 20,
        search: str | None = None,
        filter: LeadFilter | None = None,  # noqa: A002 - the contract's argument name
        include_archived: Annotated[bool, INCLUDE_ARCHIVED] = False,
    ) -> LeadPage:
        query = paging.lead_query(
            page=page,
            limit=limit,
            search=search,
            lead_filter=_lead_filter(filter, include_archived),
        )
        ctx = info.context
        return LeadPage.from_model(await ctx.reader.page(ctx.principal, query))

    @strawberry.field(
        description="The organization's leads as a Relay connection with keyset cursors: newest "
        "first on (createdAt, id), or with updatedSince every lead changed since then, oldest "
        "change first on (updatedAt, id). first/last are 1-100 (20 by default), one at a time; "
        "a cursor is only valid in the order that made it."
    )
    async def leads_connection(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        search: str | None = None,
        filter: LeadFilter | None = None,  # noqa: A002 - the contract's argument name
        updated_since: datetime | None = None,
        include_archived: Annotated[bool, INCLUDE_ARCHIVED] = False,
    ) -> LeadConnection:
        query = paging.keyset_query(
            first=first,
            after=after,
            last=last,
            before=before,
            search=search,
            lead_filter=_lead_filter(filter, include_archived),
            updated_since=updated_since,
        )
        ctx = info.context
        return LeadConnection.from_model(await ctx.reader.slice(ctx.principal, query))

    @strawberry.field(description="One lead; null with NOT_FOUND when it is not yours.")
    async def lead(self, info: Info, id: strawberry.ID) -> Lead | None:  # noqa: A002
        ctx = info.context
        lead_id = target_id(id, "Lead")
        return Lead.from_record(await ctx.reader.record(ctx.principal, lead_id))

    @strawberry.field(
        description="Your organization's events after an event id, oldest first, from the last "
        "30 days: backfill for subscribers and webhook receivers. Page by passing the last id."
    )
    async def events(
        self,
        info: Info,
        after: strawberry.ID | None = None,
        types: list[str] | None = None,
        limit: int = 100,
    ) -> list[LeadEvent]:
        ctx = info.context
        query = paging.event_query(after=after, types=types, limit=limit)
        return [LeadEvent.from_model(e) for e in await ctx.reader.events(ctx.principal, query)]

    @strawberry.field(description="The pipeline, in order.")
    async def stages(self, info: Info) -> list[Stage]:
        ctx = info.context
        return [Stage.from_model(s) for s in await ctx.reader.stages(ctx.principal)]

    @strawberry.field
    async def advisors(self, info: Info) -> list[Advisor]:
        ctx = info.context
        return [Advisor.from_model(a) for a in await ctx.reader.advisors(ctx.principal)]
