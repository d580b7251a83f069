"""Lead writes: validate → one transaction (idempotency claim, write, event, NOTIFY) → commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.errors import (
    Conflict,
    FieldError,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NotFound,
    ValidationFailed,
)
from leadgate.domain.idempotency import checked_key, fingerprint
from leadgate.domain.models import EventActor, Lead, LeadRecord, Principal
from leadgate.domain.representation import (
    lead_document,
    lead_response,
    response_duplicates,
    response_lead_id,
    stage_document,
)
from leadgate.domain.validation import references, validate_create, validate_update
from leadgate.services import lead_matching
from leadgate.services.lead_matching import Duplicate, OnDuplicate
from leadgate.store import catalog, events, idempotency, lead_writes, leads
from leadgate.store import references as refs

CREATED: Final = 201
OK: Final = 200


@dataclass(frozen=True, slots=True)
class WriteContext:
    """Who writes, under which idempotency key, in which request."""

    principal: Principal
    request_id: str
    idempotency_key: str | None = None

    @property
    def actor(self) -> EventActor | None:
        """What each event of this write records: the credential, and this request."""
        acting = self.principal.actor
        if acting is None:  # an operator at the command line
            return None
        return EventActor(type=acting.type, id=acting.id, request_id=self.request_id)


@dataclass(frozen=True, slots=True)
class WriteResult:
    record: LeadRecord
    status: int
    # The REST response body: what a replay of this key answers, byte for byte.
    body: bytes
    replayed: bool = False
    # A create's likely duplicates (issue 12 #5): GraphQL's extensions.duplicates.
    duplicates: tuple[Duplicate, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """What a write did: the lead as it is now, and the event to record (None: nothing
    changed, nothing to tell)."""

    record: LeadRecord
    event: tuple[str, dict[str, Any]] | None = None
    # The status to answer when it depends on what the write did (an upsert: 201 or 200).
    status: int | None = None
    # A create's likely duplicates, shown in its response (None: not a create).
    duplicates: tuple[Duplicate, ...] | None = None

    @classmethod
    def matched(cls, matched: lead_matching.Matched, *, upsert: bool = False) -> Change:
        status = (CREATED if matched.created else OK) if upsert else None
        found = matched.duplicates if matched.created else None
        return cls(matched.record, matched.event, status=status, duplicates=found)


Action = Callable[[asyncpg.Connection], Awaitable[Change]]


def _missing(kinds: set[str], fields: dict[str, str]) -> None:
    errors = [
        FieldError(field, f"no such {kind} in your organization")
        for kind, field in fields.items()
        if kind in kinds
    ]
    if errors:
        raise ValidationFailed(errors)


class LeadWriter:
    def __init__(
        self, pool: asyncpg.Pool, *, idempotency_ttl_seconds: float, notify: bool = True
    ) -> None:
        self._pool = pool
        self._ttl = idempotency_ttl_seconds
        # False when an event bus relays lead_events: the event statement without NOTIFY.
        self._notify = notify

    async def _run(
        self,
        ctx: WriteContext,
        *,
        operation: str,
        target: UUID | None,
        request: Any,
        status: int,
        action: Action,
    ) -> WriteResult:
        if not ctx.principal.can_write:
            raise Forbidden("Writing leads needs a write key or the editor role")
        org = ctx.principal.organization_id
        key = checked_key(ctx.idempotency_key)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if key is not None:
                    request_hash = fingerprint(operation, target, request)
                    stored = await idempotency.claim(
                        conn, org, key, request_hash, ttl_seconds=self._ttl
                    )
                    if stored is not None:
                        return await self._replay(conn, org, stored, request_hash)
                change = await action(conn)
                record = change.record
                status = change.status or status
                document = lead_document(record)
                found = change.duplicates
                body = lead_response(
                    document,
                    ctx.request_id,
                    duplicates=None if found is None else [d.document() for d in found],
                )
                completion = (key, status, body) if key is not None else None
                if change.event is not None:
                    # The event and the stored response in one round trip: the write's locks
                    # (its organization's event order, the lead total) are held until commit,
                    # so every round trip saved lets the next write in sooner.
                    event_type, extra = change.event
                    await events.insert_event(
                        conn,
                        org,
                        lead_id=record.lead.id,
                        sequence=record.sequence,
                        type=event_type,
                        payload={"lead": document, **extra},
                        actor=ctx.actor,
                        completion=completion,
                        notify=self._notify,
                    )
                elif completion is not None:
                    await idempotency.complete(conn, org, *completion)
            return WriteResult(record=record, status=status, body=body, duplicates=found or ())
        except asyncpg.LockNotAvailableError as exc:
            # A row this write needs stayed locked past lock_timeout: answer, don't hang.
            raise Conflict() from exc

    async def _replay(
        self,
        conn: asyncpg.Connection,
        org: UUID,
        stored: idempotency.StoredResponse,
        request_hash: bytes,
    ) -> WriteResult:
        if stored.request_hash != request_hash:
            raise IdempotencyKeyReused()
        if not stored.done or stored.body is None or stored.status is None:
            raise IdempotencyKeyInUse()
        lead_id = response_lead_id(stored.body)
        record = await leads.lead_record(conn, org, lead_id)
        if record is None:
            raise NotFound("Lead not found")
        found = tuple(
            lead_matching.Duplicate(UUID(d["id"]), d["reason"])
            for d in response_duplicates(stored.body)
        )
        return WriteResult(
            record=record,
            status=stored.status,
            body=stored.body,
            replayed=True,
            duplicates=found,
        )

    async def _locked(self, conn: asyncpg.Connection, org: UUID, lead_id: UUID) -> Lead:
        lead = await lead_writes.lock_lead(conn, org, lead_id)
        if lead is None:
            raise NotFound("Lead not found")
        return lead

    async def create(
        self,
        ctx: WriteContext,
        raw: object,
        *,
        on_duplicate: OnDuplicate = OnDuplicate.REPORT,
    ) -> WriteResult:
        org = ctx.principal.organization_id
        try:
            draft = validate_create(raw)
        except ValidationFailed as invalid:
            # Report unknown references together with the other failing fields.
            missing = await self._missing_references(org, raw)
            raise ValidationFailed([*invalid.fields, *missing]) from None

        async def action(conn: asyncpg.Connection) -> Change:
            created_by = ctx.principal.actor.id if ctx.principal.actor else None
            return Change.matched(
                await lead_matching.create_lead(
                    conn, org, draft, created_by=created_by, on_duplicate=on_duplicate
                )
            )

        request = {
            "values": draft.values,
            "refs": [draft.stage_id, draft.advisor_id, draft.contact_id],
        }
        if on_duplicate is not OnDuplicate.REPORT:
            request["onDuplicate"] = on_duplicate.value
        return await self._run(
            ctx,
            operation="lead.create",
            target=None,
            request=request,
            status=CREATED,
            action=action,
        )

    async def _missing_references(self, org: UUID, raw: object) -> list[FieldError]:
        named = references(raw)
        if not named:
            return []
        async with self._pool.acquire() as conn:
            missing = await refs.missing_references(
                conn,
                org,
                stage_id=named.get("stageId"),
                advisor_id=named.get("assignToAdvisorId"),
                contact_id=named.get("contactId"),
            )
        fields = {"stage": "stageId", "advisor": "assignToAdvisorId", "contact": "contactId"}
        return [
            FieldError(fields[kind], f"no such {kind} in your organization") for kind in missing
        ]

    async def update(self, ctx: WriteContext, lead_id: UUID, raw: object) -> WriteResult:
        values = validate_update(raw)
        org = ctx.principal.organization_id

        async def action(conn: asyncpg.Connection) -> Change:
            current = await self._locked(conn, org, lead_id)
            return Change.matched(await lead_matching.update_lead(conn, org, current, values))

        return await self._run(
            ctx, operation="lead.update", target=lead_id, request=values, status=OK, action=action
        )

    async def move(self, ctx: WriteContext, lead_id: UUID, stage_id: UUID) -> WriteResult:
        org = ctx.principal.organization_id

        async def action(conn: asyncpg.Connection) -> Change:
            current = await self._locked(conn, org, lead_id)
            if current.stage_id == stage_id:
                return Change(await self._current(conn, org, lead_id))
            stages = await catalog.stages_by_id(conn, org, [current.stage_id, stage_id])
            if stage_id not in stages:
                raise ValidationFailed.single("stageId", "no such stage in your organization")
            if current.converted_at is not None and stages[stage_id].semantic_slot != "won":
                raise ValidationFailed.single(
                    "stageId", "a converted lead stays in a won stage until reopenLead"
                )
            record = await lead_writes.move_lead(conn, org, lead_id, stage_id)
            return Change(
                record,
                (
                    "lead.status_changed",
                    {
                        "previousStage": stage_document(stages[current.stage_id]),
                        "stage": stage_document(record.stage),
                    },
                ),
            )

        return await self._run(
            ctx, operation="lead.move", target=lead_id, request=stage_id, status=OK, action=action
        )

    async def assign(
        self, ctx: WriteContext, lead_id: UUID, advisor_id: UUID | None
    ) -> WriteResult:
        org = ctx.principal.organization_id

        async def action(conn: asyncpg.Connection) -> Change:
            current = await self._locked(conn, org, lead_id)
            if current.primary_advisor_id == advisor_id:
                return Change(await self._current(conn, org, lead_id))
            _missing(
                await refs.missing_references(conn, org, advisor_id=advisor_id),
                {"advisor": "advisorId"},
            )
            record = await lead_writes.assign_lead(conn, org, lead_id, advisor_id)
            return Change(
                record,
                (
                    "lead.assigned",
                    {
                        "previousAdvisorId": str(current.primary_advisor_id)
                        if current.primary_advisor_id
                        else None,
                        "advisorId": str(advisor_id) if advisor_id else None,
                    },
                ),
            )

        return await self._run(
            ctx,
            operation="lead.assign",
            target=lead_id,
            request=advisor_id,
            status=OK,
            action=action,
        )

    async def upsert(
        self, ctx: WriteContext, key: lead_matching.ExternalKey, raw: object
    ) -> WriteResult:
        """Create or update the lead `key` names, atomically (issue 12 #4): 201 or 200."""
        org = ctx.principal.organization_id
        created_by = ctx.principal.actor.id if ctx.principal.actor else None

        async def action(conn: asyncpg.Connection) -> Change:
            matched = await lead_matching.upsert(conn, org, key, raw, created_by=created_by)
            return Change.matched(matched, upsert=True)

        return await self._run(
            ctx,
            operation="lead.upsert",
            target=None,
            request={"system": key.system, "id": key.id, "input": raw},
            status=OK,
            action=action,
        )

    async def merge(self, ctx: WriteContext, primary_id: UUID, duplicate_id: UUID) -> WriteResult:
        """Merge the duplicate into the primary (issue 12 #5); answers the primary."""
        org = ctx.principal.organization_id

        async def action(conn: asyncpg.Connection) -> Change:
            matched = await lead_matching.merge(
                conn, org, primary_id, duplicate_id, actor=ctx.actor, notify=self._notify
            )
            return Change.matched(matched)

        return await self._run(
            ctx,
            operation="lead.merge",
            target=primary_id,
            request=duplicate_id,
            status=OK,
            action=action,
        )

    async def _current(self, conn: asyncpg.Connection, org: UUID, lead_id: UUID) -> LeadRecord:
        record = await leads.lead_record(conn, org, lead_id)
        if record is None:
            raise NotFound("Lead not found")
        return record
