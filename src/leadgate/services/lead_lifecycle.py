"""The lead lifecycle (issue 12 #1, #2): convert and reopen, do-not-call, logged contacts,
archive and restore, each through LeadWriter's transaction (idempotency claim, write, event,
NOTIFY); and erasure, which removes the lead's personal data for good."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.erasure import (
    erased_payload,
    erasure_response,
    personal_values,
    response_erasure,
    scrubbed,
)
from leadgate.domain.errors import (
    Conflict,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NotFound,
    ValidationFailed,
)
from leadgate.domain.formats import iso_utc
from leadgate.domain.idempotency import checked_key, fingerprint
from leadgate.domain.representation import lead_document
from leadgate.domain.validation import is_plain_text
from leadgate.services.lead_writes import OK, Change, LeadWriter, WriteContext, WriteResult
from leadgate.store import events, idempotency, leads
from leadgate.store import lead_lifecycle as store

# How far ahead of this server's clock a logged contact may be (the caller's clock drifts).
CONTACT_CLOCK_SKEW: Final = timedelta(seconds=60)
MAX_DNC_REASON: Final = 500


@dataclass(frozen=True, slots=True)
class Erasure:
    """What eraseLead answers: the lead's id and when it was erased (nothing else is left)."""

    lead_id: UUID
    erased_at: datetime
    status: int
    # The REST response body, stored under the idempotency key.
    body: bytes
    replayed: bool = False


def dnc_reason(raw: object) -> str | None:
    """The reason as stored: trimmed plain text up to MAX_DNC_REASON; empty or null is none."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not is_plain_text(raw):
        raise ValidationFailed.single("reason", "must be plain text")
    reason = raw.strip()
    if len(reason) > MAX_DNC_REASON:
        raise ValidationFailed.single("reason", f"must be at most {MAX_DNC_REASON} characters")
    return reason or None


def contact_time(at: datetime | None, *, now: datetime) -> datetime:
    """When the contact happened: `at` (with an offset, not in the future), or now."""
    if at is None:
        return now
    if at.tzinfo is None:
        raise ValidationFailed.single("at", "must be a date and time with an offset")
    if at > now + CONTACT_CLOCK_SKEW:
        raise ValidationFailed.single("at", "must not be in the future")
    return at


class LeadLifecycle(LeadWriter):
    """LeadWriter's lifecycle operations; `sharing(writer)` makes one over a writer's pool."""

    @classmethod
    def sharing(cls, writer: LeadWriter) -> LeadLifecycle:
        return cls(writer._pool, idempotency_ttl_seconds=writer._ttl, notify=writer._notify)

    async def convert(
        self,
        ctx: WriteContext,
        lead_id: UUID,
        *,
        account_id: UUID | None,
        contact_id: UUID | None,
    ) -> WriteResult:
        org = ctx.principal.organization_id

        async def action(conn: asyncpg.Connection) -> Change:
            current = await self._locked(conn, org, lead_id)
            if current.converted_at is not None:
                raise ValidationFailed.single(
                    "id", "the lead is already converted; reopen it (reopenLead) first"
                )
            won = await store.won_stage(conn, org)
            if won is None:
                raise ValidationFailed.single("id", "your pipeline has no stage in the won slot")
            record = await store.convert_lead(
                conn, org, lead_id, account_id=account_id, contact_id=contact_id, stage_id=won
            )
            return Change(record, ("lead.converted", {"previousStageId": str(current.stage_id)}))

        return await self._run(
            ctx,
            operation="lead.convert",
            target=lead_id,
            request=[account_id, contact_id],
            status=OK,
            action=action,
        )

    async def reopen(self, ctx: WriteContext, lead_id: UUID) -> WriteResult:
        """Clears the conversion (the lead stays in its stage); a no-op when not converted."""
        org = ctx.principal.organization_id

        async def action(conn: asyncpg.Connection) -> Change:
            current = await self._locked(conn, org, lead_id)
            if current.converted_at is None:
                return Change(await self._current(conn, org, lead_id))
            record = await store.reopen_lead(conn, org, lead_id)
            previous = {
                "convertedAt": iso_utc(current.converted_at),
                "convertedAccountId": _id(current.converted_account_id),
                "convertedContactId": _id(current.converted_contact_id),
            }
            return Change(record, ("lead.reopened", {"previous": previous}))

        return await self._run(
            ctx, operation="lead.reopen", target=lead_id, request=None, status=OK, action=action
        )

    async def set_do_not_call(
        self, ctx: WriteContext, lead_id: UUID, *, do_not_call: bool, reason: str | None
    ) -> WriteResult:
        """Mark (with an optional reason) or clear; a no-op when nothing would change."""
        org = ctx.principal.organization_id
        reason = reason if do_not_call else None

        async def action(conn: asyncpg.Connection) -> Change:
            current = await self._locked(conn, org, lead_id)
            if current.is_do_not_call == do_not_call and current.dnc_reason == reason:
                return Change(await self._current(conn, org, lead_id))
            record = await store.set_do_not_call(
                conn, org, lead_id, do_not_call=do_not_call, reason=reason
            )
            return Change(
                record,
                (
                    "lead.dnc_changed",
                    {"isDoNotCall": do_not_call, "previousIsDoNotCall": current.is_do_not_call},
                ),
            )

        return await self._run(
            ctx,
            operation="lead.dnc",
            target=lead_id,
            request=[do_not_call, reason],
            status=OK,
            action=action,
        )

    async def log_contact(
        self, ctx: WriteContext, lead_id: UUID, at: datetime | None
    ) -> WriteResult:
        """Records a contact (lead.contacted, every time); lastContactedAt is the latest."""
        org = ctx.principal.organization_id
        moment = contact_time(at, now=datetime.now(UTC))

        async def action(conn: asyncpg.Connection) -> Change:
            await self._locked(conn, org, lead_id)
            record = await store.log_contact(conn, org, lead_id, moment)
            return Change(record, ("lead.contacted", {"contactedAt": iso_utc(moment)}))

        return await self._run(
            ctx,
            operation="lead.contact",
            target=lead_id,
            # Without `at` a retry means the same contact, whenever it arrives.
            request=iso_utc(at) if at is not None else None,
            status=OK,
            action=action,
        )

    async def set_archived(
        self, ctx: WriteContext, lead_id: UUID, *, archived: bool
    ) -> WriteResult:
        """Archive or restore; a no-op when the lead already is as asked."""
        org = ctx.principal.organization_id

        async def action(conn: asyncpg.Connection) -> Change:
            current = await self._locked(conn, org, lead_id)
            if (current.archived_at is not None) == archived:
                return Change(await self._current(conn, org, lead_id))
            record = await store.set_archived(conn, org, lead_id, archived=archived)
            return Change(record, ("lead.archived" if archived else "lead.restored", {}))

        return await self._run(
            ctx,
            operation="lead.archive" if archived else "lead.restore",
            target=lead_id,
            request=None,
            status=OK,
            action=action,
        )

    async def erase(self, ctx: WriteContext, lead_id: UUID) -> Erasure:
        """Delete the lead, the stored responses that show it, and every personal value in its
        past events; cancel their pending webhook deliveries; record `lead.erased`."""
        principal = ctx.principal
        may_erase = principal.can_manage or (
            principal.api_key_id is not None and principal.can_write
        )
        if not may_erase:
            raise Forbidden("Erasing a lead needs a write key or the admin role")
        org = principal.organization_id
        key = checked_key(ctx.idempotency_key)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                request_hash = fingerprint("lead.erase", lead_id, None)
                if key is not None:
                    stored = await idempotency.claim(
                        conn, org, key, request_hash, ttl_seconds=self._ttl
                    )
                    if stored is not None:
                        return _erasure_replay(stored, request_hash)
                await self._locked(conn, org, lead_id)
                record = await leads.lead_record(conn, org, lead_id)
                if record is None:
                    raise NotFound("Lead not found")
                current = lead_document(record)
                payloads = await store.event_payloads(conn, org, lead_id)
                found: set[str] = set()
                personal_values(current, found)
                for payload in payloads.values():
                    personal_values(payload, found)
                secrets = frozenset(found)
                await store.rewrite_payloads(
                    conn, org, {i: scrubbed(p, secrets) for i, p in payloads.items()}
                )
                await store.cancel_deliveries(conn, org, lead_id)
                await store.delete_responses(conn, org, lead_id)
                await store.delete_lead(conn, org, lead_id)
                erased_at = datetime.now(UTC)
                body = erasure_response(lead_id, erased_at, ctx.request_id)
                await events.insert_event(
                    conn,
                    org,
                    lead_id=lead_id,
                    sequence=record.sequence + 1,
                    type="lead.erased",
                    payload=erased_payload(lead_id, erased_at),
                    actor=ctx.actor,
                    completion=(key, OK, body) if key is not None else None,
                    notify=self._notify,
                )
            return Erasure(lead_id=lead_id, erased_at=erased_at, status=OK, body=body)
        except asyncpg.LockNotAvailableError as exc:
            raise Conflict() from exc


def _id(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def _erasure_replay(stored: idempotency.StoredResponse, request_hash: bytes) -> Erasure:
    if stored.request_hash != request_hash:
        raise IdempotencyKeyReused()
    if not stored.done or stored.body is None or stored.status is None:
        raise IdempotencyKeyInUse()
    lead_id, erased_at = response_erasure(stored.body)
    return Erasure(
        lead_id=lead_id, erased_at=erased_at, status=stored.status, body=stored.body, replayed=True
    )
