"""Bulk imports: a file read whole → a job → batches of rows, each batch one transaction.

Each row is judged by the one lead validator (domain/validation.py). A batch writes its valid
rows in one INSERT, their lead.created events in one more statement, records its refused rows
and adds its counts to the job, and commits: a database error rolls back that batch alone (its
rows are then reported as failed), and the batches before and after it stand.

A row carrying externalIds is upserted by its first one instead (services/lead_matching.py),
in a savepoint of its batch's transaction: it creates or updates the lead that id names, with
that write's own event, and another lead holding one of its ids makes it a refused row.

The job's end is an event of the organization (no lead): import.completed once every batch
has committed, import.failed when the run stops short (its process shut down, the database
went away), written with the job's final status in one transaction and sent to the webhooks
subscribed to it like any event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import asyncpg

from leadgate.domain.errors import (
    DuplicateLead,
    FieldError,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NotFound,
    ValidationFailed,
)
from leadgate.domain.idempotency import checked_key, fingerprint
from leadgate.domain.import_files import (
    ImportFormat,
    ImportJob,
    ImportRow,
    RowError,
    iter_batches,
    job_document,
    job_response,
    read_rows,
    response_job_id,
)
from leadgate.domain.models import Principal
from leadgate.domain.representation import lead_document
from leadgate.domain.validation import LeadDraft, external_id_problem, validate_create
from leadgate.services.lead_matching import upsert_by_external_id
from leadgate.services.lead_writes import WriteContext
from leadgate.store import events, idempotency
from leadgate.store import imports as store
from leadgate.store.imports import KnownReferences

log = logging.getLogger(__name__)

BATCH_SIZE: Final = 1000
# Batches in flight at once, each on its own connection: one's leads are inserted (the search
# column, the indexes) while another's rows are validated or its events written (those take the
# organization's event lock in turn).
CONCURRENCY: Final = 2
ACCEPTED: Final = 202
SOURCE: Final = "csv_import"
# The references a row may name: input field → (draft attribute, kind).
_REFERENCES: Final = {
    "stageId": ("stage_id", "stage"),
    "assignToAdvisorId": ("advisor_id", "advisor"),
    "contactId": ("contact_id", "contact"),
}

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ImportFile:
    data: bytes
    format: ImportFormat
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class Started:
    """A POST's answer: the job, and the REST body stored under its idempotency key."""

    job: ImportJob
    body: bytes
    replayed: bool = False


@dataclass(slots=True)
class DryRun:
    total: int = 0
    valid: int = 0
    errors: list[tuple[int, str | None, str]] = field(default_factory=list)


def _prepared(row: ImportRow) -> tuple[dict[str, Any], list[FieldError]]:
    """The row's create input (source csv_import) and the problems found reading it."""
    raw = dict(row.raw)
    problems = list(row.problems)
    given_source = raw.pop("source", SOURCE)
    if given_source != SOURCE:
        problems.append(FieldError("source", f"is {SOURCE} for every imported lead"))
    for problem in problems:
        raw.pop(problem.field, None)
    raw["source"] = SOURCE
    return raw, problems


def _row_input(row: ImportRow) -> tuple[LeadDraft | None, list[FieldError]]:
    raw, problems = _prepared(row)
    try:
        draft = validate_create(raw)
    except ValidationFailed as invalid:
        return None, [*problems, *invalid.fields]
    return (None, problems) if problems else (draft, [])


@dataclass(frozen=True, slots=True)
class Keyed:
    """A row upserted by its first external id (the others are synced with it)."""

    row: ImportRow
    fields: dict[str, Any]
    system: str
    external_id: str


def _keyed(
    batch: Sequence[ImportRow],
) -> tuple[list[ImportRow], list[Keyed], list[tuple[int, str | None, str]]]:
    """The batch's rows for the bulk insert, those carrying external ids, and the refused."""
    plain: list[ImportRow] = []
    keyed: list[Keyed] = []
    errors: list[tuple[int, str | None, str]] = []
    for row in batch:
        if not row.raw.get("externalIds"):
            plain.append(row)
            continue
        raw, problems = _prepared(row)
        ids = raw.get("externalIds")
        if not problems and not isinstance(ids, dict):
            problems.append(FieldError("externalIds", "must be a JSON object of system name to id"))
        if problems:
            errors.extend((row.number, p.field, p.message) for p in problems)
            continue
        assert isinstance(ids, dict)  # noqa: S101 - checked above
        system, external_id = next(iter(ids.items()))
        problem = external_id_problem(system, external_id)
        if problem is not None:
            errors.append((row.number, f"externalIds.{str(system)[:32]}", problem))
            continue
        keyed.append(Keyed(row, raw, system, external_id))
    return plain, keyed, errors


def _judge(
    batch: Sequence[ImportRow],
) -> tuple[list[tuple[ImportRow, LeadDraft]], list[tuple[int, str | None, str]]]:
    valid: list[tuple[ImportRow, LeadDraft]] = []
    errors: list[tuple[int, str | None, str]] = []
    for row in batch:
        draft, problems = _row_input(row)
        if draft is None:
            errors.extend((row.number, p.field, p.message) for p in problems)
        else:
            valid.append((row, draft))
    return valid, errors


def _unknown(draft: LeadDraft, known: KnownReferences) -> list[FieldError]:
    sets = {"stage": known.stages, "advisor": known.advisors, "contact": known.contacts}
    found: list[FieldError] = []
    for name, (attribute, kind) in _REFERENCES.items():
        value = getattr(draft, attribute)
        if value is not None and value not in sets[kind]:
            found.append(FieldError(name, f"no such {kind} in your organization"))
    return found


async def _referenced(
    conn: asyncpg.Connection, org: UUID, valid: list[tuple[ImportRow, LeadDraft]]
) -> tuple[list[tuple[ImportRow, LeadDraft]], list[tuple[int, str | None, str]]]:
    """The rows whose stage, advisor and contact are the organization's, and the others."""
    drafts = [d for _, d in valid]
    wanted = {
        kind: sorted({v for d in drafts if (v := getattr(d, attribute)) is not None})
        for attribute, kind in _REFERENCES.values()
    }
    if not any(wanted.values()):
        return valid, []
    known = await store.known_references(
        conn, org, stages=wanted["stage"], advisors=wanted["advisor"], contacts=wanted["contact"]
    )
    kept: list[tuple[ImportRow, LeadDraft]] = []
    errors: list[tuple[int, str | None, str]] = []
    for row, draft in valid:
        unknown = _unknown(draft, known)
        if unknown:
            errors.extend((row.number, e.field, e.message) for e in unknown)
        else:
            kept.append((row, draft))
    return kept, errors


def _values(draft: LeadDraft) -> dict[str, Any]:
    return {
        **draft.values,
        "stage_id": str(draft.stage_id) if draft.stage_id else None,
        "primary_advisor_id": str(draft.advisor_id) if draft.advisor_id else None,
        "contact_id": str(draft.contact_id) if draft.contact_id else None,
    }


def _ended_payload(job: ImportJob) -> dict[str, Any]:
    """The payload of import.completed and import.failed (a webhook's `data`): the job's
    outcome as GET /v1/imports/{id} shows it."""
    document = job_document(job)
    ended = {key: document[key] for key in ("status", "counts", "completedAt")}
    if job.failure is not None:
        ended["failure"] = job.failure
    return {"importJobId": document["id"], **ended}


def _failed_rows(batch: Sequence[ImportRow], message: str) -> list[tuple[int, str | None, str]]:
    return [(row.number, None, message) for row in batch]


class Importer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        idempotency_ttl_seconds: float,
        batch_size: int = BATCH_SIZE,
        concurrency: int = CONCURRENCY,
        notify: bool = True,
    ) -> None:
        self._pool = pool
        # False when an event bus relays lead_events (no NOTIFY in the batch's statement).
        self._notify = notify
        self._ttl = idempotency_ttl_seconds
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._running: set[asyncio.Task[ImportJob]] = set()

    async def start(self, ctx: WriteContext, upload: ImportFile) -> Started:
        """Read the file (a malformed one is refused whole), create its job (202) and run it
        in the background; a retry under the same key answers the first job."""
        principal = ctx.principal
        if not principal.can_write:
            raise Forbidden("Importing leads needs a write key or the editor role")
        key = checked_key(ctx.idempotency_key)
        rows = read_rows(upload.data, upload.format)
        org = principal.organization_id
        async with self._pool.acquire() as conn, conn.transaction():
            if key is not None:
                request_hash = fingerprint(
                    "import.create", None, [upload.format.value, upload.filename, upload.data]
                )
                stored = await idempotency.claim(
                    conn, org, key, request_hash, ttl_seconds=self._ttl
                )
                if stored is not None:
                    return await self._replay(conn, org, stored, request_hash)
            job = await self._create_job(conn, principal, upload, len(rows))
            body = job_response(job, ctx.request_id)
            if key is not None:
                await idempotency.complete(conn, org, key, ACCEPTED, body)
        task = asyncio.create_task(self.run(ctx, job, rows))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return Started(job=job, body=body)

    async def _replay(
        self,
        conn: asyncpg.Connection,
        org: UUID,
        stored: idempotency.StoredResponse,
        request_hash: bytes,
    ) -> Started:
        if stored.request_hash != request_hash:
            raise IdempotencyKeyReused()
        if not stored.done or stored.body is None:
            raise IdempotencyKeyInUse()
        job = await store.job(conn, org, response_job_id(stored.body))
        if job is None:
            raise NotFound("Import not found")
        return Started(job=job, body=stored.body, replayed=True)

    async def _create_job(
        self, conn: asyncpg.Connection, principal: Principal, upload: ImportFile, total: int
    ) -> ImportJob:
        return await store.insert_job(
            conn,
            principal.organization_id,
            file_format=upload.format.value,
            filename=upload.filename,
            total_rows=total,
            created_by=principal.actor.id if principal.actor else None,
        )

    async def import_now(
        self,
        ctx: WriteContext,
        upload: ImportFile,
        *,
        progress: Callable[[int], Progress] | None = None,
    ) -> ImportJob:
        """The command line's import: the job, run to its end before returning; `progress`
        makes a bar for the number of rows the file turned out to have."""
        if not ctx.principal.can_write:
            raise Forbidden("Importing leads needs a write key or the editor role")
        rows = read_rows(upload.data, upload.format)
        async with self._pool.acquire() as conn:
            job = await self._create_job(conn, ctx.principal, upload, len(rows))
        bar = progress(len(rows)) if progress is not None else None
        return await self.run(ctx, job, rows, progress=bar)

    async def dry_run(self, principal: Principal, upload: ImportFile) -> DryRun:
        """What an import of the file would do, writing nothing."""
        rows = read_rows(upload.data, upload.format)
        report = DryRun(total=len(rows))
        async with self._pool.acquire() as conn:
            for batch in iter_batches(rows, self._batch_size):
                valid, errors = _judge(batch)
                valid, unknown = await _referenced(conn, principal.organization_id, valid)
                report.valid += len(valid)
                report.errors.extend(sorted([*errors, *unknown], key=lambda e: e[0]))
        return report

    async def run(
        self,
        ctx: WriteContext,
        job: ImportJob,
        rows: list[ImportRow],
        *,
        progress: Progress | None = None,
    ) -> ImportJob:
        org = ctx.principal.organization_id
        try:
            async with self._pool.acquire() as conn:
                await store.start_job(conn, org, job.id)
            batches = iter_batches(rows, self._batch_size)
            done = 0

            async def worker() -> None:
                nonlocal done
                for batch in batches:  # shared: each batch goes to one worker
                    await self._batch(ctx, job.id, batch)
                    done += len(batch)
                    if progress is not None:
                        progress(done)

            await asyncio.gather(*(worker() for _ in range(self._concurrency)))
            return await self._finish(ctx, job.id, status="completed")
        except (asyncio.CancelledError, Exception) as exc:
            log.exception("import %s failed", job.id)
            # Best effort: with the database gone this fails too, and the job stays running.
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._finish(ctx, job.id, status="failed", failure=type(exc).__name__)
                )
            raise

    async def _finish(
        self, ctx: WriteContext, job_id: UUID, *, status: str, failure: str | None = None
    ) -> ImportJob:
        """The job's end and its event (import.completed or import.failed) in one
        transaction: the job has its final status exactly when the event exists. The event
        lock comes first, then the job's row, in a batch's order."""
        org = ctx.principal.organization_id
        async with self._pool.acquire() as conn, conn.transaction():
            await store.lock_events(conn, org)
            finished = await store.finish_job(conn, org, job_id, status=status, failure=failure)
            await events.insert_organization_event(
                conn,
                org,
                type=f"import.{status}",
                payload=_ended_payload(finished),
                actor=ctx.actor,
                notify=self._notify,
            )
        return finished

    async def _upsert(
        self,
        conn: asyncpg.Connection,
        ctx: WriteContext,
        job_id: UUID,
        keyed: Keyed,
        created_by: str | None,
    ) -> tuple[bool | None, list[tuple[int, str | None, str]]]:
        """One row by its external id, in a savepoint of the batch's transaction (a refused
        row leaves nothing behind): whether it created the lead (None: refused), its errors."""
        org = ctx.principal.organization_id
        number = keyed.row.number
        try:
            async with conn.transaction():
                result = await upsert_by_external_id(
                    conn,
                    org,
                    system=keyed.system,
                    external_id=keyed.external_id,
                    fields=keyed.fields,
                    actor=ctx.actor,
                    created_by=created_by,
                    notify=self._notify,
                )
                if result.created:
                    await store.claim_created(
                        conn, org, result.record.lead.id, job_id, result.event_id
                    )
        except DuplicateLead as duplicate:
            return None, [(number, "externalIds", duplicate.message)]
        except ValidationFailed as invalid:
            found = invalid.fields or [FieldError("externalIds", invalid.message)]
            return None, [(number, e.field, e.message) for e in found]
        return result.created, []

    async def _batch(self, ctx: WriteContext, job_id: UUID, batch: list[ImportRow]) -> None:
        org = ctx.principal.organization_id
        plain, keyed, errors = _keyed(batch)
        valid, refused = _judge(plain)
        errors.extend(refused)
        created_by = ctx.principal.actor.id if ctx.principal.actor else None
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                created = updated = 0
                if keyed:
                    await store.lock_events(conn, org)
                for row in keyed:
                    outcome, problems = await self._upsert(conn, ctx, job_id, row, created_by)
                    errors.extend(problems)
                    created += outcome is True
                    updated += outcome is False
                valid, unknown = await _referenced(conn, org, valid)
                errors = sorted([*errors, *unknown], key=lambda e: e[0])
                await store.insert_errors(conn, org, job_id, errors)
                if valid:
                    records = await store.insert_leads(
                        conn,
                        org,
                        [_values(d) for _, d in valid],
                        created_by=created_by,
                        job_id=job_id,
                    )
                    created += len(records)
                    # Last but one: from here to commit this batch holds the organization's
                    # event lock, then the job's row.
                    await store.insert_created_events(
                        conn,
                        org,
                        [lead_document(r) for r in records],
                        ctx.actor,
                        notify=self._notify,
                    )
                await store.count_batch(
                    conn,
                    org,
                    job_id,
                    created=created,
                    updated=updated,
                    failed=len({e[0] for e in errors}),
                )
        except asyncpg.PostgresError as exc:
            # This batch is rolled back whole: report each of its rows, and go on.
            log.warning("import %s: a batch failed: %s", job_id, exc.sqlstate)
            failed = _failed_rows(
                batch,
                f"not written: its batch of rows {batch[0].number}-{batch[-1].number} failed "
                f"in the database ({exc.sqlstate})",
            )
            async with self._pool.acquire() as conn, conn.transaction():
                await store.insert_errors(conn, org, job_id, failed)
                await store.count_batch(conn, org, job_id, created=0, failed=len(batch))

    async def job(self, principal: Principal, job_id: UUID) -> ImportJob:
        async with self._pool.acquire() as conn:
            found = await store.job(conn, principal.organization_id, job_id)
        if found is None:
            raise NotFound("Import not found")
        return found

    async def errors(
        self, principal: Principal, job_id: UUID, *, after: tuple[int, int], limit: int
    ) -> list[RowError]:
        """A page of the refused rows in row order, after (row, error id)."""
        async with self._pool.acquire() as conn:
            if await store.job(conn, principal.organization_id, job_id) is None:
                raise NotFound("Import not found")
            return await store.errors_page(
                conn, principal.organization_id, job_id, after=after, limit=limit
            )

    async def close(self) -> None:
        """On shutdown: a job still running stops (its committed batches stand) and is
        marked failed."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def wait(self) -> None:
        """Until every job this process started has ended (tests and the benchmark)."""
        await asyncio.gather(*self._running, return_exceptions=True)
