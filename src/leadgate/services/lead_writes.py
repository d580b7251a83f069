"""Lead writes: validate → one transaction (idempotency claim, write, event, NOTIFY) → commit."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
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

# BEGIN, and plan the transaction's statements for any values (PostgreSQL's default
# plan_cache_mode) instead of afresh on every run: the pool forces custom plans for the reads'
# optional filters (db/pool.py), which no write statement has, and planning a create's
# statements afresh cost PostgreSQL as much CPU as running them (bench/profile_writes.py).
# One round trip, like asyncpg's own BEGIN. Behind PgBouncer (unnamed statements, planned
# each time anyway) it changes nothing.
BEGIN_WRITE: Final = "BEGIN; SET LOCAL plan_cache_mode = auto"


@contextlib.asynccontextmanager
async def write_transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction begun by BEGIN_WRITE: committed when the block ends, rolled back when it
    raises. (asyncpg's `conn.transaction()` refuses to start inside it, rather than nesting.)"""
    await conn.execute(BEGIN_WRITE)
    try:
        yield
    except BaseException:
        # A connection that is lost, or still cancelling its statement, cannot roll back
        # now: the pool rolls it back or discards it on release. The error to raise is the
        # one that ended the block.
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


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
# A write that claims its idempotency key itself, in its first statement (None: another
# request holds the key, and the write did nothing).
ClaimingAction = Callable[[asyncpg.Connection, idempotency.Claim | None], Awaitable[Change | None]]


def claiming_first(org: UUID, action: Action) -> ClaimingAction:
    """`action` after a claim of its own statement (for writes whose first statement cannot
    take the claim in)."""

    async def claim_then_act(
        conn: asyncpg.Connection, claim: idempotency.Claim | None
    ) -> Change | None:
        if claim is not None and not await idempotency.claimed(conn, org, claim):
            return None
        return await action(conn)

    return claim_then_act


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
        """`action` in one transaction with the claim of the write's key before it, its event
        and its stored response after it."""
        return await self._run_claiming(
            ctx,
            operation=operation,
            target=target,
            request=request,
            status=status,
            action=claiming_first(ctx.principal.organization_id, action),
        )

    async def _run_claiming(
        self,
        ctx: WriteContext,
        *,
        operation: str,
        target: UUID | None,
        request: Any,
        status: int,
        action: ClaimingAction,
    ) -> WriteResult:
        """As `_run`, for an action that claims the key in a statement of its own."""
        if not ctx.principal.can_write:
            raise Forbidden("Writing leads needs a write key or the editor role")
        org = ctx.principal.organization_id
        key = checked_key(ctx.idempotency_key)
        claim = None
        if key is not None:
            claim = idempotency.Claim(key, fingerprint(operation, target, request), self._ttl)
        try:
            async with self._pool.acquire() as conn, write_transaction(conn):
                change = await action(conn, claim)
                if change is None:
                    assert claim is not None  # noqa: S101 - only a claim is ever refused
                    stored = await idempotency.stored(conn, org, claim.key)
                    return await self._replay(conn, org, stored, claim.request_hash)
                record = change.record
                status = change.status or status
                document = lead_document(record)
                found = change.duplicates
                body = lead_response(
                    document,
                    ctx.request_id,
                    duplicates=None if found is None else [d.document() for d in found],
                )
                completion = (claim.key, status, body) if claim is not None else None
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
            # A lock this write needs stayed held past lock_timeout: answer, don't hang. The
            # key itself held by a request still in flight is IDEMPOTENCY_KEY_IN_USE.
            if claim is not None and idempotency.taken(exc):
                raise IdempotencyKeyInUse() from exc
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

        async def action(
            conn: asyncpg.Connection, claim: idempotency.Claim | None
        ) -> Change | None:
            created_by = ctx.principal.actor.id if ctx.principal.actor else None
            matched = await lead_matching.create_lead(
                conn, org, draft, created_by=created_by, on_duplicate=on_duplicate, claim=claim
            )
            return Change.matched(matched) if matched is not None else None

        request = {
            "values": draft.values,
            "refs": [draft.stage_id, draft.advisor_id, draft.contact_id],
        }
        if on_duplicate is not OnDuplicate.REPORT:
            request["onDuplicate"] = on_duplicate.value
        return await self._run_claiming(
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
