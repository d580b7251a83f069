"""Subscription root: leadStageChanged and leadEvents, over graphql-transport-ws and SSE."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import strawberry

from leadgate.domain import models, paging
from leadgate.domain.errors import ValidationFailed
from leadgate.domain.ids import parse_event_id
from leadgate.domain.webhooks import LEAD_EVENT_TYPES
from leadgate.graphql.arguments import optional_uuid_argument
from leadgate.graphql.context import Context, Info
from leadgate.graphql.types import Actor, Lead, LeadEvent, Stage
from leadgate.services.event_feed import Delivery, Position

STATUS_CHANGED: Final = frozenset({"lead.status_changed"})
# Lead events only: organization events (import.completed) go to webhooks, never here.
ALL_TYPES: Final = frozenset(LEAD_EVENT_TYPES)


@strawberry.type(description="A lead moved from one pipeline stage to another.")
class LeadStageChange:
    event_id: strawberry.ID = strawberry.field(
        description="The event's id: resume after it with `after`"
    )
    lead: Lead = strawberry.field(description="The lead as it is now")
    from_stage: Stage | None
    to_stage: Stage
    changed_at: datetime
    actor: Actor | None = strawberry.field(description="Who moved it")

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> LeadStageChange | None:
        event, record = delivery.event, delivery.record
        to_stage = delivery.stages.get(UUID(event.payload["stage"]["id"]))
        previous = event.payload.get("previousStage") or {}
        from_stage = delivery.stages.get(UUID(previous["id"])) if "id" in previous else None
        if record is None or to_stage is None:
            return None
        return cls(
            event_id=strawberry.ID(str(event.id)),
            lead=Lead.from_record(record),
            from_stage=Stage.from_model(from_stage) if from_stage else None,
            to_stage=Stage.from_model(to_stage),
            changed_at=event.created_at,
            actor=Actor.from_model(event.actor),
        )


def _cursor(after: strawberry.ID | None) -> int | None:
    if after is None:
        return None
    cursor = parse_event_id(after)
    if cursor is None:
        raise ValidationFailed.single("after", "must be an event id")
    return cursor


def _event_types(types: list[str] | None) -> frozenset[str]:
    if types is None:
        return ALL_TYPES
    if not types:
        raise ValidationFailed.single(
            "types", f"must name at least one of {', '.join(LEAD_EVENT_TYPES)}"
        )
    problem = paging.lead_event_types_problem(types)
    if problem is not None:
        raise ValidationFailed.single("types", problem)
    return frozenset(types)


def _stages_named(event: models.LeadEvent) -> set[str]:
    """The lead's stage when the event happened, and for a move the stage it left."""
    payload: dict[str, Any] = event.payload
    named = set()
    lead = payload.get("lead")
    if isinstance(lead, dict):
        stage = lead.get("attributes", {}).get("stage")
        if isinstance(stage, dict) and "id" in stage:
            named.add(str(stage["id"]))
    previous = payload.get("previousStage")
    if isinstance(previous, dict) and "id" in previous:
        named.add(str(previous["id"]))
    return named


async def _deliveries(
    ctx: Context, *, types: frozenset[str], lead_id: UUID | None, after: int | None
) -> AsyncGenerator[Delivery, None]:
    """The feed's stream for one subscription, its cursor followed by the connection."""
    position = Position()
    connection = ctx.connection
    if connection is not None:
        connection.follow(position)  # its cursor, told to the client at shutdown
    try:
        stream = ctx.feed.stream(
            ctx.principal, types=types, lead_id=lead_id, after=after, position=position
        )
        async with contextlib.aclosing(stream) as deliveries:
            async for delivery in deliveries:
                # Loaders per delivered event: `lead { history }` must include this event,
                # not repeat what an earlier event's loaders cached (issue 8 #13).
                ctx.renew_loaders()
                yield delivery
    finally:
        if connection is not None:
            connection.unfollow(position)


def _prime(ctx: Context, record: models.LeadRecord) -> None:
    """The lead as the feed read it, for `LeadEvent.lead`: no query per event and subscriber."""
    loaders = ctx.loaders
    loaders.leads.prime(record.lead.id, record.lead)
    loaders.stages.prime(record.stage.id, record.stage)
    if record.advisor is not None:
        loaders.advisors.prime(record.advisor.id, record.advisor)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Your organization's stage moves, live. `leadId` narrows to one lead, "
        "`stageId` to moves into or out of one stage; `after` first replays every move after "
        "that event id (from the last 30 days), then continues live: no gap, no duplicate."
    )
    async def lead_stage_changed(
        self,
        info: Info,
        lead_id: strawberry.ID | None = None,
        stage_id: strawberry.ID | None = None,
        after: strawberry.ID | None = None,
    ) -> AsyncGenerator[LeadStageChange, None]:
        ctx = info.context
        lead = optional_uuid_argument("leadId", lead_id)
        stage = optional_uuid_argument("stageId", stage_id)
        cursor = _cursor(after)
        deliveries = _deliveries(ctx, types=STATUS_CHANGED, lead_id=lead, after=cursor)
        async with contextlib.aclosing(deliveries):
            async for delivery in deliveries:
                change = LeadStageChange.from_delivery(delivery)
                if change is None:
                    continue
                if stage is not None and str(stage) not in (
                    change.to_stage.id,
                    change.from_stage.id if change.from_stage else None,
                ):
                    continue
                yield change

    @strawberry.subscription(
        description="Every event of your organization's pipeline, live, in order: "
        "`lead.created`, `lead.updated` (`data.changes`: each changed field's `from` and `to`), "
        "`lead.status_changed` (`data.previousStage`, `data.stage`), `lead.assigned` "
        "(`data.previousAdvisorId`, `data.advisorId`) and the lifecycle's lead.converted, "
        "lead.reopened, lead.dnc_changed, lead.contacted, lead.archived and lead.restored (an "
        "archived lead's other events are not delivered); `data.lead` is the lead as the event "
        "left it, `lead` the lead as delivered. `types` narrows to some of those types, "
        "`leadId` to one lead, `stageId` to events of leads in that stage when they happened "
        "(and moves out of it); `after` first replays every matching event after that event "
        "id (from the last 30 days), then continues live: no gap, no duplicate."
    )
    async def lead_events(
        self,
        info: Info,
        types: list[str] | None = None,
        lead_id: strawberry.ID | None = None,
        stage_id: strawberry.ID | None = None,
        after: strawberry.ID | None = None,
    ) -> AsyncGenerator[LeadEvent, None]:
        ctx = info.context
        wanted = _event_types(types)
        lead = optional_uuid_argument("leadId", lead_id)
        stage = optional_uuid_argument("stageId", stage_id)
        cursor = _cursor(after)
        deliveries = _deliveries(ctx, types=wanted, lead_id=lead, after=cursor)
        async with contextlib.aclosing(deliveries):
            async for delivery in deliveries:
                if delivery.record is None:
                    continue
                if stage is not None and str(stage) not in _stages_named(delivery.event):
                    continue
                _prime(ctx, delivery.record)
                yield LeadEvent.from_model(delivery.event)
