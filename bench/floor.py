"""The floor: the least a Python service on this stack (aiohttp, asyncpg, orjson) can do.

Each endpoint is the minimum that answers like the gateway:

- `POST /graphql` answers the benchmark's list query (the 20 newest leads with every scalar
  field, stage and primary advisor, and the total) with ONE SQL statement and orjson, shaped
  like the GraphQL response. The request body is read but not parsed: no GraphQL at all.
  `POST /graphql-maintained-total` is the same with the total read from `lead_counts`, and
  `POST /graphql-no-total` the same without the total (the same SQL without the count).
- `POST /create` runs the raw-SQL transaction of an idempotent `createLead`: BEGIN; claim the
  idempotency key; insert the lead (RETURNING it with stage and advisor); insert its event
  (outbox, webhook deliveries, NOTIFY); store the response under the key; COMMIT. The SQL is
  a copy of src/leadgate/store/{idempotency,lead_writes,events}.py, kept here so the floor
  does not move when the gateway's code does.

Run by bench/run.py: `python bench/floor.py --port P --org ORG --write-org ORG2`, with
DATABASE_URL and BENCH_AUTHORIZATION (the expected `Authorization` header) in the environment.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import asyncpg
import orjson
from aiohttp import web

from leadgate.store.events import INSERT_EVENT_COMPLETING
from leadgate.store.idempotency import CLAIM
from leadgate.store.lead_writes import INSERT_LEAD

LIST_LEADS: Final = """
SELECT c.total,
    l.id::text, l.business_name, l.contact_first_name, l.contact_last_name, l.email, l.phone,
    l.industry, l.monthly_revenue::text, l.requested_amount::text, upper(l.source),
    upper(l.priority), l.is_do_not_call, l.dnc_reason, l.dnc_at, l.tags, l.custom_fields,
    l.external_ids, l.lead_score, l.contact_id::text, l.last_contacted_at, l.stage_changed_at,
    l.converted_at, l.converted_account_id::text, l.converted_contact_id::text,
    l.import_job_id::text, l.created_by::text, l.created_at, l.updated_at,
    s.id::text, s.stage_key, s.stage_label, s.color, s.semantic_slot, s.position,
    a.id::text, a.name, a.email
FROM (
    SELECT count(*) AS total
    FROM leads
    WHERE organization_id = $1
) AS c
LEFT JOIN LATERAL (
    SELECT *
    FROM leads
    WHERE organization_id = $1
    ORDER BY created_at DESC, id DESC
    LIMIT $2
) AS l ON true
LEFT JOIN pipeline_stages AS s
    ON s.organization_id = l.organization_id AND s.id = l.stage_id
LEFT JOIN advisors AS a
    ON a.organization_id = l.organization_id AND a.id = l.primary_advisor_id
ORDER BY l.created_at DESC, l.id DESC
"""

# The same with the total read from lead_counts (sql/migrations/0002), as the gateway reads
# it: the floor for a gateway that maintains its totals instead of counting.
COUNT_SUBQUERY: Final = """
    SELECT count(*) AS total
    FROM leads
    WHERE organization_id = $1
"""
LIST_LEADS_MAINTAINED_TOTAL: Final = LIST_LEADS.replace(
    COUNT_SUBQUERY,
    """
    SELECT coalesce(max(total), 0) AS total
    FROM lead_counts
    WHERE organization_id = $1
""",
)
assert LIST_LEADS_MAINTAINED_TOTAL != LIST_LEADS
# The page alone, for a list that asks for no total: the same row shape, a NULL total.
LIST_LEADS_NO_TOTAL: Final = LIST_LEADS.replace(
    COUNT_SUBQUERY,
    """
    SELECT NULL::bigint AS total
""",
)
assert LIST_LEADS_NO_TOTAL != LIST_LEADS

# The GraphQL field names of LIST_LEADS's columns after `total`, in order.
LEAD_FIELDS: Final = (
    "id",
    "businessName",
    "contactFirstName",
    "contactLastName",
    "email",
    "phone",
    "industry",
    "monthlyRevenue",
    "requestedAmount",
    "source",
    "priority",
    "isDoNotCall",
    "dncReason",
    "dncAt",
    "tags",
    "customFields",
    "externalIds",
    "leadScore",
    "contactId",
    "lastContactedAt",
    "stageChangedAt",
    "convertedAt",
    "convertedAccountId",
    "convertedContactId",
    "importJobId",
    "createdBy",
    "createdAt",
    "updatedAt",
)
STAGE_FIELDS: Final = ("id", "stageKey", "stageLabel", "color", "semanticSlot", "position")
ADVISOR_FIELDS: Final = ("id", "name", "email")
_STAGE_AT: Final = 1 + len(LEAD_FIELDS)
_ADVISOR_AT: Final = _STAGE_AT + len(STAGE_FIELDS)

# --- createLead: the gateway's own statements (store/idempotency.py, lead_writes.py,
# events.py), so the floor runs exactly its transaction, minus the Python around it: BEGIN,
# claim, insert, event + stored response, COMMIT.

IDEMPOTENCY_TTL_SECONDS: Final = 24 * 3600.0
# The API's field names → columns, for the fields a create may carry.
CREATE_COLUMNS: Final = {
    "businessName": "business_name",
    "contactFirstName": "contact_first_name",
    "contactLastName": "contact_last_name",
    "email": "email",
    "phone": "phone",
    "industry": "industry",
    "monthlyRevenue": "monthly_revenue",
    "requestedAmount": "requested_amount",
    "source": "source",
    "priority": "priority",
    "tags": "tags",
    "customFields": "custom_fields",
}


@dataclass(frozen=True, slots=True)
class Config:
    org: UUID
    write_org: UUID
    authorization: str


CONFIG: Final = web.AppKey("config", Config)
POOL: Final = web.AppKey("pool", asyncpg.Pool)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


def _node(values: tuple[Any, ...]) -> dict[str, Any]:
    lead = dict(zip(LEAD_FIELDS, values[1:_STAGE_AT], strict=True))
    lead["stage"] = dict(zip(STAGE_FIELDS, values[_STAGE_AT:_ADVISOR_AT], strict=True))
    advisor = values[_ADVISOR_AT:]
    lead["primaryAdvisor"] = (
        dict(zip(ADVISOR_FIELDS, advisor, strict=True)) if advisor[0] is not None else None
    )
    return lead


def _unauthorized(request: web.Request) -> bool:
    return request.headers.get("Authorization") != request.app[CONFIG].authorization


def list_handler(
    sql: str, *, total: bool = True
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def list_leads(request: web.Request) -> web.Response:
        if _unauthorized(request):
            return web.json_response({"errors": [{"message": "unauthenticated"}]}, status=401)
        await request.read()
        async with request.app[POOL].acquire() as conn:
            rows = await conn.fetch(sql, request.app[CONFIG].org, 20)
        nodes = [_node(tuple(r.values())) for r in rows if r[1] is not None]
        page = {"total": rows[0][0], "nodes": nodes} if total else {"nodes": nodes}
        body = orjson.dumps({"data": {"leads": page}})
        return web.Response(body=body, content_type="application/json")

    return list_leads


def _lead_document(row: asyncpg.Record) -> dict[str, Any]:
    """The event payload's lead: every attribute, like the gateway's lead_document."""
    attributes = {
        key: value
        for key, value in row.items()
        if key not in ("id", "organization_id", "event_sequence")
    }
    return {"id": str(row["id"]), "type": "lead", "attributes": attributes}


async def create_lead(request: web.Request) -> web.Response:
    if _unauthorized(request):
        return web.json_response({"errors": [{"message": "unauthenticated"}]}, status=401)
    raw = await request.read()
    payload = orjson.loads(raw)
    key: str = payload["idempotencyKey"]
    values = {CREATE_COLUMNS[name]: value for name, value in payload["input"].items()}
    for column in ("source", "priority"):
        if column in values:
            values[column] = values[column].lower()
    # As the gateway's validator does: jsonb_populate_record leaves a missing key NULL.
    values.setdefault("custom_fields", {})
    values.setdefault("external_ids", {})
    values.setdefault("tags", [])
    request_hash = hashlib.sha256(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)).digest()
    org: UUID = request.app[CONFIG].write_org
    async with request.app[POOL].acquire() as conn, conn.transaction():
        claimed = await conn.fetchval(CLAIM, org, key, request_hash, IDEMPOTENCY_TTL_SECONDS)
        if not claimed:
            return web.json_response({"errors": [{"message": "key in use"}]}, status=409)
        row = await conn.fetchrow(INSERT_LEAD, org, values, None, None, None, None)
        body = orjson.dumps(
            {
                "data": {
                    "createLead": {
                        "id": str(row["id"]),
                        "businessName": row["business_name"],
                        "stage": {"stageKey": row["stage_key"]},
                    }
                }
            }
        )
        await conn.fetchval(
            INSERT_EVENT_COMPLETING,
            org,
            row["id"],
            row["event_sequence"],
            "lead.created",
            {"lead": _lead_document(row)},
            # An actor of the size the gateway records (who wrote, in which request).
            {"type": "api_key", "id": str(row["id"]), "requestId": key},
            key,
            200,
            body,
        )
    return web.Response(body=body, content_type="application/json")


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(
    *, dsn: str, org: UUID, write_org: UUID, authorization: str, pool_size: int
) -> web.Application:
    async def database(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await asyncpg.create_pool(
            dsn, min_size=pool_size, max_size=pool_size, init=_init_connection
        )
        yield
        await app[POOL].close()

    app = web.Application()
    app[CONFIG] = Config(org=org, write_org=write_org, authorization=authorization)
    app.cleanup_ctx.append(database)
    app.router.add_post("/graphql", list_handler(LIST_LEADS))
    app.router.add_post("/graphql-maintained-total", list_handler(LIST_LEADS_MAINTAINED_TOTAL))
    app.router.add_post("/graphql-no-total", list_handler(LIST_LEADS_NO_TOTAL, total=False))
    app.router.add_post("/create", create_lead)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--org", type=UUID, required=True, help="the organization to read")
    parser.add_argument("--write-org", type=UUID, required=True, help="where /create writes")
    parser.add_argument("--pool-size", type=int, default=8)
    args = parser.parse_args()
    app = create_app(
        dsn=os.environ["DATABASE_URL"],
        org=args.org,
        write_org=args.write_org,
        authorization=os.environ["BENCH_AUTHORIZATION"],
        pool_size=args.pool_size,
    )
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
