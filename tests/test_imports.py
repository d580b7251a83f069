"""Bulk imports (issue 12 #3): `leadgate import`, POST /v1/imports, GET /v1/imports/{id}[/errors]
and importLeads, against the session's server and real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from leadgate.app import create_app
from leadgate.config import Settings
from leadgate.domain.import_files import ImportFormat
from leadgate.domain.models import Principal
from leadgate.services.imports import Importer, ImportFile
from leadgate.services.lead_writes import WriteContext
from leadgate.store.events import NOTIFY_CHANNEL
from tests.processes import leadgate
from tests.support import Api, Tenant, bearer, error_codes, header

CSV_HEADER: Final = "businessName,email,monthlyRevenue,tags,customFields,priority\n"
JOB_DEADLINE: Final = 20.0
IMPORT_LEADS: Final = """
mutation ($content: String!, $format: ImportFormat!, $key: String) {
  importLeads(content: $content, format: $format, idempotencyKey: $key) {
    id status format totalRows createdCount updatedCount failedCount
  }
}
"""


def csv_rows(count: int, prefix: str = "Imported") -> str:
    lines = [
        f'{prefix} {i},owner{i}@example.com,{1000 + i},a;b,"{{""n"": {i}}}",high\n'
        for i in range(1, count + 1)
    ]
    return CSV_HEADER + "".join(lines)


async def upload(
    api: Api,
    key: str,
    data: bytes | str,
    *,
    filename: str = "leads.csv",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    form = aiohttp.FormData()
    raw = data.encode() if isinstance(data, str) else data
    # A stream, not bytes: aiohttp warns that a large bytes body blocks the event loop.
    form.add_field(
        "file", io.BytesIO(raw), filename=filename, content_type="application/octet-stream"
    )
    async with api.session.post(
        f"{api.base}/v1/imports", data=form, headers={**bearer(key), **(headers or {})}
    ) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def finished(api: Api, key: str, job_id: str) -> dict[str, Any]:
    """The job once it has ended (polled: it runs in the background)."""
    deadline = time.monotonic() + JOB_DEADLINE
    while True:
        status, body, _ = await api.rest("GET", f"/v1/imports/{job_id}", key)
        assert status == 200, body
        job: dict[str, Any] = body["data"]
        if job["status"] in ("completed", "failed"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.02)


async def all_errors(api: Api, key: str, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    query = f"limit={limit}"
    while True:
        status, body, _ = await api.rest("GET", f"/v1/imports/{job_id}/errors?{query}", key)
        assert status == 200, body
        found.extend(body["data"])
        cursor = body["meta"]["nextCursor"]
        if cursor is None:
            return found
        query = f"limit={limit}&cursor={cursor}"


async def count(pool: asyncpg.Pool, sql: str, *args: object) -> int:
    async with pool.acquire() as conn:
        found: int = await conn.fetchval(sql, *args)
    return found


async def imported_leads(pool: asyncpg.Pool, tenant: Tenant) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT business_name, source, import_job_id, tags, custom_fields, priority "
            "FROM leads WHERE organization_id = $1 AND import_job_id IS NOT NULL "
            "ORDER BY business_name",
            tenant.id,
        )
    return rows


async def test_a_csv_upload_answers_202_with_the_job_and_writes_every_row_with_its_job_id(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    status, body, headers = await upload(api, tenant.write_key, csv_rows(3))

    assert status == 202, body
    job_id = body["data"]["id"]
    assert header(headers, "Location") == f"/v1/imports/{job_id}"
    job = await finished(api, tenant.write_key, job_id)
    assert job["status"] == "completed"
    assert job["counts"] == {"total": 3, "created": 3, "updated": 0, "failed": 0}
    assert job["completedAt"] is not None
    leads = await imported_leads(pool, tenant)
    assert [r["business_name"] for r in leads] == ["Imported 1", "Imported 2", "Imported 3"]
    assert {r["source"] for r in leads} == {"csv_import"}
    assert {str(r["import_job_id"]) for r in leads} == {job_id}
    assert leads[0]["tags"] == ["a", "b"]
    assert leads[0]["custom_fields"] == {"n": 1}
    assert leads[0]["priority"] == "high"


async def test_an_ndjson_body_imports_its_rows(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    lines = b'{"businessName": "Line One", "tags": ["x"]}\n\n{"businessName": "Line Two"}\n'

    status, body, _ = await api.rest(
        "POST",
        "/v1/imports",
        tenant.write_key,
        data=lines,
        headers={"Content-Type": "application/x-ndjson"},
    )

    assert status == 202, body
    assert body["data"]["format"] == "ndjson"
    job = await finished(api, tenant.write_key, body["data"]["id"])
    assert job["counts"]["created"] == 2
    assert [r["business_name"] for r in await imported_leads(pool, tenant)] == [
        "Line One",
        "Line Two",
    ]


async def test_refused_rows_are_reported_by_row_field_and_message_and_valid_rows_are_written(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    stranger = uuid.uuid4()
    content = (
        "businessName,email,monthlyRevenue,stageId\n"
        "Good One,a@example.com,10,\n"
        "Bad Email,not-an-email,10,\n"
        "Two Faults,also-bad,-5,\n"
        f"Unknown Stage,b@example.com,10,{stranger}\n"
        "Good Two,,,\n"
    )

    _, body, _ = await upload(api, tenant.write_key, content)
    job_id = body["data"]["id"]
    job = await finished(api, tenant.write_key, job_id)

    assert job["counts"] == {"total": 5, "created": 2, "updated": 0, "failed": 3}
    errors = await all_errors(api, tenant.write_key, job_id)
    assert [(e["row"], e["field"]) for e in errors] == [
        (2, "email"),
        (3, "email"),
        (3, "monthlyRevenue"),
        (4, "stageId"),
    ]
    assert all(e["message"] for e in errors)
    assert errors[3]["message"] == "no such stage in your organization"
    names = [r["business_name"] for r in await imported_leads(pool, tenant)]
    assert names == ["Good One", "Good Two"]


SYNCED_CSV: Final = (
    "businessName,email,externalIds\n"
    'Synced One,one@example.com,"{""hubspot"": ""h-1"", ""sf"": ""s-1""}"\n'
    'Synced Two,two@example.com,"{""hubspot"": ""h-2""}"\n'
    "Plain Three,three@example.com,\n"
)


async def by_external_id(api: Api, tenant: Tenant, system: str, external_id: str) -> list[str]:
    path = f"/v1/leads?externalId={system}:{external_id}"
    status, body, _ = await api.rest("GET", path, tenant.read_key)
    assert status == 200, body
    return [lead["id"] for lead in body["data"]]


async def test_rows_with_an_external_ids_column_create_leads_found_by_their_external_ids(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    _, body, _ = await upload(api, tenant.write_key, SYNCED_CSV)
    job_id = body["data"]["id"]
    job = await finished(api, tenant.write_key, job_id)

    assert job["counts"] == {"total": 3, "created": 3, "updated": 0, "failed": 0}
    [one] = await by_external_id(api, tenant, "hubspot", "h-1")
    assert await by_external_id(api, tenant, "sf", "s-1") == [one]
    assert len(await by_external_id(api, tenant, "hubspot", "h-2")) == 1
    leads = await imported_leads(pool, tenant)
    assert [r["business_name"] for r in leads] == ["Plain Three", "Synced One", "Synced Two"]
    assert {(r["source"], str(r["import_job_id"])) for r in leads} == {("csv_import", job_id)}
    async with pool.acquire() as conn:
        payload = await conn.fetchval(
            "SELECT payload FROM lead_events WHERE organization_id = $1 AND lead_id = $2 "
            "AND type = 'lead.created'",
            tenant.id,
            UUID(one),
        )
    assert payload["lead"]["attributes"]["importJobId"] == job_id


async def test_importing_the_same_external_ids_again_updates_their_leads_without_duplicates(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    _, first, _ = await upload(api, tenant.write_key, SYNCED_CSV)
    await finished(api, tenant.write_key, first["data"]["id"])
    [one] = await by_external_id(api, tenant, "hubspot", "h-1")
    renamed = SYNCED_CSV.replace("Synced One", "Synced Uno")

    _, again, _ = await upload(api, tenant.write_key, renamed)
    job = await finished(api, tenant.write_key, again["data"]["id"])

    assert job["counts"] == {"total": 3, "created": 1, "updated": 2, "failed": 0}
    assert await by_external_id(api, tenant, "hubspot", "h-1") == [one]
    synced = await count(
        pool,
        "SELECT count(*) FROM leads WHERE organization_id = $1 AND business_name LIKE 'Synced %'",
        tenant.id,
    )
    assert synced == 2
    async with pool.acquire() as conn:
        updated = await conn.fetch(
            "SELECT payload FROM lead_events WHERE organization_id = $1 AND lead_id = $2 "
            "AND type = 'lead.updated'",
            tenant.id,
            UUID(one),
        )
    [event] = updated
    assert event["payload"]["changes"]["businessName"] == {"from": "Synced One", "to": "Synced Uno"}


async def test_a_row_whose_external_id_another_lead_holds_is_a_row_error_and_the_rest_written(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    lines = (
        b'{"businessName": "Holder", "externalIds": {"hubspot": "9"}}\n'
        b'{"businessName": "Taker", "externalIds": {"sf": "x", "hubspot": "9"}}\n'
        b'{"businessName": "After", "externalIds": {"hubspot": "10"}}\n'
    )

    _, body, _ = await api.rest(
        "POST",
        "/v1/imports",
        tenant.write_key,
        data=lines,
        headers={"Content-Type": "application/x-ndjson"},
    )
    job = await finished(api, tenant.write_key, body["data"]["id"])

    assert job["counts"] == {"total": 3, "created": 2, "updated": 0, "failed": 1}
    [error] = await all_errors(api, tenant.write_key, body["data"]["id"])
    assert (error["row"], error["field"]) == (2, "externalIds")
    [holder] = await by_external_id(api, tenant, "hubspot", "9")
    assert holder in error["message"]
    assert await by_external_id(api, tenant, "sf", "x") == []
    names = [r["business_name"] for r in await imported_leads(pool, tenant)]
    assert names == ["After", "Holder"]


async def test_the_errors_of_an_import_page_through_with_a_cursor(api: Api, tenant: Tenant) -> None:
    content = "businessName,email\n" + "".join(f"Row {i},bad{i}\n" for i in range(7))
    _, body, _ = await upload(api, tenant.write_key, content)
    job_id = body["data"]["id"]
    await finished(api, tenant.write_key, job_id)

    errors = await all_errors(api, tenant.write_key, job_id, limit=3)

    assert [e["row"] for e in errors] == list(range(1, 8))


async def test_a_batch_with_a_database_error_rolls_back_only_that_batch(
    pool: asyncpg.Pool, tenant: Tenant
) -> None:
    # A trigger refusing one name stands for any database error the validator cannot foresee.
    poison = f"Poison {uuid.uuid4()}"
    function = f"refuse_{uuid.uuid4().hex}"
    async with pool.acquire() as conn:
        await conn.execute(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.business_name = '{poison}' THEN RAISE EXCEPTION 'refused'; END IF; "
            "RETURN NEW; END $$"
        )
        await conn.execute(
            f"CREATE TRIGGER {function} BEFORE INSERT ON leads "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
    try:
        names = ["First A", "First B", poison, "Second B", "Third A", "Third B"]
        content = "businessName\n" + "".join(f"{n}\n" for n in names)
        importer = Importer(pool, idempotency_ttl_seconds=60, batch_size=2)
        ctx = WriteContext(principal=operator(tenant.id), request_id="test")

        job = await importer.import_now(ctx, ImportFile(content.encode(), ImportFormat.CSV))
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP TRIGGER {function} ON leads")
            await conn.execute(f"DROP FUNCTION {function}()")

    assert (job.status, job.created_count, job.failed_count) == ("completed", 4, 2)
    written = [r["business_name"] for r in await imported_leads(pool, tenant)]
    assert written == ["First A", "First B", "Third A", "Third B"]
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT row_number FROM import_job_errors WHERE organization_id = $1 AND job_id = $2 "
            "ORDER BY row_number",
            tenant.id,
            job.id,
        )
    assert [r["row_number"] for r in rows] == [3, 4]


def operator(org: UUID) -> Principal:
    return Principal(organization_id=org, role="admin", actor=None)


async def test_the_same_file_under_the_same_idempotency_key_answers_the_first_job_once(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    key = {"Idempotency-Key": f"import-{uuid.uuid4()}"}
    content = csv_rows(2)

    first = await upload(api, tenant.write_key, content, headers=key)
    again = await upload(api, tenant.write_key, content, headers=key)
    other = await upload(api, tenant.write_key, csv_rows(3), headers=key)

    assert first[0] == again[0] == 202
    assert again[1]["data"]["id"] == first[1]["data"]["id"]
    assert header(again[2], "Idempotent-Replayed") == "true"
    assert other[0] == 422
    assert other[1]["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    await finished(api, tenant.write_key, first[1]["data"]["id"])
    jobs = await count(
        pool, "SELECT count(*) FROM import_jobs WHERE organization_id = $1", tenant.id
    )
    assert jobs == 1
    assert len(await imported_leads(pool, tenant)) == 2


async def test_a_read_only_key_is_forbidden_to_import(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    status, body, _ = await upload(api, tenant.read_key, csv_rows(1))

    assert status == 403
    assert body["error"]["code"] == "FORBIDDEN"
    jobs = await count(
        pool, "SELECT count(*) FROM import_jobs WHERE organization_id = $1", tenant.id
    )
    assert jobs == 0


async def test_another_organizations_import_and_its_errors_are_not_found(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    _, body, _ = await upload(api, tenant.write_key, "businessName,email\nX,bad\n")
    job_id = body["data"]["id"]
    await finished(api, tenant.write_key, job_id)

    job_status, job_body, _ = await api.rest("GET", f"/v1/imports/{job_id}", other_tenant.read_key)
    errors_status, errors_body, _ = await api.rest(
        "GET", f"/v1/imports/{job_id}/errors", other_tenant.read_key
    )

    assert (job_status, job_body["error"]["code"]) == (404, "NOT_FOUND")
    assert (errors_status, errors_body["error"]["code"]) == (404, "NOT_FOUND")


MALFORMED: Final = {
    "wrong encoding": ("leads.csv", "businessName\nCaf\xe9\n".encode("latin-1"), "not UTF-8"),
    "ragged rows": ("leads.csv", b"businessName,email\nA,a@example.com\nB\n", "row 2 has 1"),
    "50 MB of one line": ("leads.ndjson", b'{"businessName": "' + b"x" * 50_000_000, "line 1"),
    "a line that is not JSON": ("leads.ndjson", b'{"businessName": "A"}\n{oops\n', "line 2"),
    "an unknown column": ("leads.csv", b"businessName,shoeSize\nA,42\n", "shoeSize"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_file_is_refused_whole_with_a_typed_error_and_nothing_written(
    api: Api, tenant: Tenant, pool: asyncpg.Pool, case: str
) -> None:
    filename, data, named = MALFORMED[case]

    status, body, _ = await upload(api, tenant.write_key, data, filename=filename)

    assert status == 422, body
    assert body["error"]["code"] == "VALIDATION_ERROR"
    [problem] = body["error"]["fields"]
    assert problem["field"] == "file"
    assert named in problem["message"]
    jobs = await count(
        pool, "SELECT count(*) FROM import_jobs WHERE organization_id = $1", tenant.id
    )
    assert jobs == 0
    assert await imported_leads(pool, tenant) == []


async def test_a_file_over_the_general_body_limit_is_imported(
    api: Api, tenant: Tenant, settings: Settings
) -> None:
    # Few rows, each with large custom fields: over the 1 MiB body limit, quick to import.
    padding = "x" * 15_000
    row = f'Wide {{}},"{{{{""pad"": ""{padding}""}}}}"\n'
    content = "businessName,customFields\n" + "".join(row.format(i) for i in range(80))
    assert len(content) > settings.max_body_bytes

    status, body, _ = await upload(api, tenant.write_key, content)

    assert status == 202, body
    job = await finished(api, tenant.write_key, body["data"]["id"])
    assert job["counts"]["created"] == 80


@pytest.fixture
async def small_limit_api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    limited = dataclasses.replace(settings, max_import_bytes=1000, dispatcher_enabled=False)
    server = TestServer(create_app(limited), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session=session, base=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


async def test_a_file_over_the_import_limit_is_payload_too_large(
    small_limit_api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    status, body, _ = await small_limit_api.rest(
        "POST",
        "/v1/imports",
        tenant.write_key,
        data=csv_rows(50).encode(),
        headers={"Content-Type": "text/csv"},
    )

    assert status == 413
    assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    jobs = await count(
        pool, "SELECT count(*) FROM import_jobs WHERE organization_id = $1", tenant.id
    )
    assert jobs == 0


async def test_each_imported_lead_fires_lead_created_with_its_job_id(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    _, body, _ = await upload(api, tenant.write_key, csv_rows(4))
    job_id = body["data"]["id"]
    await finished(api, tenant.write_key, job_id)

    async with pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT e.lead_id, e.sequence, e.payload, e.actor FROM lead_events AS e "
            "JOIN leads AS l ON l.organization_id = e.organization_id AND l.id = e.lead_id "
            "WHERE e.organization_id = $1 AND e.type = 'lead.created' AND l.import_job_id = $2",
            tenant.id,
            UUID(job_id),
        )
    assert len(events) == 4
    assert {e["sequence"] for e in events} == {1}
    payload = events[0]["payload"]["lead"]
    assert payload["id"] == str(events[0]["lead_id"])
    assert payload["attributes"]["importJobId"] == job_id
    assert payload["attributes"]["source"] == "csv_import"
    assert events[0]["actor"]["type"] == "api_key"


async def test_import_leads_in_graphql_creates_a_job_from_the_rows_given_as_a_string(
    api: Api, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    status, body = await api.graphql(
        tenant.write_key,
        IMPORT_LEADS,
        {"content": '{"businessName": "Graph One"}\n', "format": "NDJSON", "key": "gql-import"},
    )

    assert status == 200, body
    job = body["data"]["importLeads"]
    assert (job["format"], job["totalRows"]) == ("NDJSON", 1)
    assert (await finished(api, tenant.write_key, job["id"]))["counts"]["created"] == 1
    assert [r["business_name"] for r in await imported_leads(pool, tenant)] == ["Graph One"]


async def test_import_leads_in_graphql_refuses_a_read_only_key(api: Api, tenant: Tenant) -> None:
    _, body = await api.graphql(
        tenant.read_key, IMPORT_LEADS, {"content": "businessName\nA\n", "format": "CSV"}
    )

    assert error_codes(body) == ["FORBIDDEN"]


# --- command line ------------------------------------------------------------------------------


@pytest.fixture
def db_env(database_url: str, pool: asyncpg.Pool) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url}


async def test_leadgate_import_writes_a_csv_file_with_a_progress_bar(
    db_env: dict[str, str], tenant: Tenant, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(csv_rows(5) + "Bad Row,not-an-email,1,,,\n")

    result = (await leadgate("import", str(path), "--org", str(tenant.id), env=db_env)).ok()

    assert "completed: 5 created, 1 failed of 6" in result.stdout
    progress = [line for line in result.stderr.splitlines() if line.startswith("rows [")]
    assert progress and "6/6" in progress[-1], result.stderr
    assert len(await imported_leads(pool, tenant)) == 5


async def test_leadgate_import_with_an_event_bus_sends_no_notify(
    db_env: dict[str, str], database_url: str, tenant: Tenant, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(csv_rows(3))
    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[-1]))
    # The relay publishes from lead_events; nothing here connects to the bus itself.
    env = {**db_env, "LEADGATE_EVENT_BUS": "nats://127.0.0.1:4222"}
    try:
        result = (await leadgate("import", str(path), "--org", str(tenant.id), env=env)).ok()
        await listener.execute("SELECT 1")  # a round trip: notifications already sent are in
    finally:
        await listener.close()

    assert "completed: 3 created, 0 failed of 3" in result.stdout
    assert len(await imported_leads(pool, tenant)) == 3
    assert heard == []


async def test_leadgate_import_dry_run_reports_the_refused_rows_and_writes_nothing(
    db_env: dict[str, str], tenant: Tenant, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "leads.jsonl"
    path.write_text('{"businessName": "Fine"}\n{"email": "nope"}\n')

    result = (
        await leadgate("import", str(path), "--org", str(tenant.id), "--dry-run", env=db_env)
    ).ok()

    assert "row 2: email must be a valid email address" in result.stdout
    assert "dry run: 2 rows, 1 valid, nothing written" in result.stdout
    jobs = await count(
        pool, "SELECT count(*) FROM import_jobs WHERE organization_id = $1", tenant.id
    )
    assert jobs == 0
    assert await imported_leads(pool, tenant) == []


async def test_leadgate_import_of_a_malformed_file_fails_with_a_message_not_a_traceback(
    db_env: dict[str, str], tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(b"businessName,email\nA\n")

    result = await leadgate("import", str(path), "--org", str(tenant.id), env=db_env)

    assert result.returncode == 1
    assert "row 1 has 1 cells" in result.stderr
    assert "Traceback" not in result.stderr
