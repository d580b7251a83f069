"""What a create lists as likely duplicates when many leads share its email or phone, and
when creates of one email run at once (issue 14 #5: the search is part of the INSERT's
statement, after the create has queued behind the others of its email)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

import asyncpg
import pytest

from tests.support import Api, Tenant, make_tenant

CAP: Final = 10


@pytest.fixture
async def org(pool: asyncpg.Pool) -> Tenant:
    return await make_tenant(pool)


def email() -> str:
    return f"jane.{uuid.uuid4().hex[:10]}@acme-lending.com"


async def create(api: Api, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    status, answer, _ = await api.rest("POST", "/v1/leads", tenant.write_key, json=body)
    assert status == 201, answer
    return answer


async def leads_created_long_ago(
    pool: asyncpg.Pool, tenant: Tenant, count: int, **values: str
) -> list[str]:
    """`count` leads with `values`, a day apart, newest first in the table's physical order
    (so the index, not the heap, must give their age order); their ids oldest first."""
    rows = await pool.fetch(
        """
        INSERT INTO leads (organization_id, email, phone, stage_id, created_at)
        SELECT $1, $2, $3, $4, now() - make_interval(days => n)
        FROM generate_series(1, $5) AS n
        RETURNING id, created_at
        """,
        tenant.id,
        values.get("email"),
        values.get("phone"),
        tenant.stage_ids[0],
        count,
    )
    return [str(r["id"]) for r in sorted(rows, key=lambda r: r["created_at"])]


async def test_a_create_lists_the_ten_oldest_of_the_many_leads_sharing_its_email(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    address = email()
    oldest_first = await leads_created_long_ago(pool, org, 25, email=address)

    body = await create(api, org, {"email": address})

    assert body["meta"]["duplicates"] == [
        {"id": lead_id, "reason": "email"} for lead_id in oldest_first[:CAP]
    ]


async def test_leads_with_the_email_come_before_phone_only_ones_each_lead_once(
    api: Api, org: Tenant, pool: asyncpg.Pool
) -> None:
    address, number = email(), "+1 555 " + str(uuid.uuid4().int)[:7]
    digits = "".join(c for c in number if c.isdigit())
    both = await leads_created_long_ago(pool, org, 3, email=address, phone=digits)
    phone_only = await leads_created_long_ago(pool, org, 12, phone=digits)

    body = await create(api, org, {"email": address, "phone": number})

    expected = [{"id": i, "reason": "email"} for i in both]
    expected += [{"id": i, "reason": "phone"} for i in phone_only[: CAP - len(both)]]
    assert body["meta"]["duplicates"] == expected


async def test_concurrent_creates_of_one_email_each_list_every_one_committed_before_it(
    api: Api, org: Tenant
) -> None:
    address = email()

    answers = await asyncio.gather(*(create(api, org, {"email": address}) for _ in range(6)))

    # They queued one behind the other: each lists exactly the ones committed before it.
    in_order = sorted(answers, key=lambda body: len(body["meta"]["duplicates"]))
    for position, body in enumerate(in_order):
        listed = {duplicate["id"] for duplicate in body["meta"]["duplicates"]}
        assert listed == {earlier["data"]["id"] for earlier in in_order[:position]}
