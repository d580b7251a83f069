"""Realistic demo data: advisors and leads spread over the pipeline and the last six months."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final
from uuid import UUID

import asyncpg

from leadgate.domain.errors import NotFound
from leadgate.store import catalog, leads, organizations

_FIRST: Final = (
    "Jane",
    "Mike",
    "Priya",
    "Carlos",
    "Aisha",
    "Tom",
    "Mei",
    "Olu",
    "Sofia",
    "Liam",
    "Noah",
    "Emma",
    "Ava",
    "Lucas",
    "Hana",
    "Omar",
    "Grace",
    "Ivan",
    "Zoe",
    "Mateo",
    "Chloe",
    "Ravi",
    "Nina",
    "Ethan",
    "Fatima",
    "Jonas",
    "Leila",
    "Diego",
    "Sara",
    "Kenji",
)
_LAST: Final = (
    "Doe",
    "Johnson",
    "Patel",
    "Garcia",
    "Khan",
    "Nguyen",
    "Smith",
    "Okafor",
    "Rossi",
    "Murphy",
    "Chen",
    "Kowalski",
    "Silva",
    "Müller",
    "Haddad",
    "Brown",
    "Tanaka",
    "Andersson",
    "Lopez",
    "Ali",
    "Novak",
    "Dubois",
    "Kim",
    "Schmidt",
    "Ivanova",
    "O'Neil",
    "Sato",
    "Cohen",
)
_NAME_A: Final = (
    "Acme",
    "Blue Ridge",
    "Summit",
    "Harbor",
    "Maple",
    "Golden Gate",
    "Lakeside",
    "Ironwood",
    "Evergreen",
    "Redwood",
    "Silverline",
    "Northstar",
    "Cedar",
    "Riverbend",
    "Pioneer",
    "Brightside",
    "Keystone",
    "Oakmont",
    "Sunrise",
    "Granite",
)
_NAME_B: Final = (
    "Bakery",
    "Logistics",
    "Dental",
    "Auto Repair",
    "Construction",
    "Coffee Co",
    "Fitness",
    "Plumbing",
    "Landscaping",
    "Software",
    "Trucking",
    "Pharmacy",
    "Florist",
    "Brewing",
    "Print Shop",
    "Veterinary",
    "Electric",
    "Salon",
    "Catering",
    "Hardware",
)
_SUFFIX: Final = ("LLC", "Inc", "Corp", "Co", "Group", "& Sons", "Ltd")
_INDUSTRY: Final = {
    "Bakery": "Food & Beverage",
    "Logistics": "Transportation",
    "Dental": "Healthcare",
    "Auto Repair": "Automotive",
    "Construction": "Construction",
    "Coffee Co": "Food & Beverage",
    "Fitness": "Health & Fitness",
    "Plumbing": "Home Services",
    "Landscaping": "Home Services",
    "Software": "Technology",
    "Trucking": "Transportation",
    "Pharmacy": "Healthcare",
    "Florist": "Retail",
    "Brewing": "Food & Beverage",
    "Print Shop": "Retail",
    "Veterinary": "Healthcare",
    "Electric": "Home Services",
    "Salon": "Personal Care",
    "Catering": "Food & Beverage",
    "Hardware": "Retail",
}
_TAGS: Final = (
    "high-value",
    "repeat",
    "seasonal",
    "referral",
    "urgent-need",
    "equipment",
    "expansion",
    "working-capital",
    "franchise",
    "new-business",
)
# Weighted so most leads sit early in the pipeline, as in a real funnel.
_SOURCES: Final = (
    ("api", 3),
    ("web_form", 4),
    ("manual", 2),
    ("referral", 2),
    ("csv_import", 2),
    ("dialer", 1),
)
_PRIORITIES: Final = (("low", 2), ("normal", 6), ("high", 2), ("urgent", 1))
_STAGE_WEIGHTS: Final = (35, 20, 15, 12, 8, 10)
ADVISOR_NAMES: Final = ("Mike Johnson", "Sarah Chen", "David Okafor", "Elena Rossi", "James Patel")
_BATCH: Final = 5_000


def _weighted(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _amount(rng: random.Random, low: float, high: float) -> Decimal:
    return Decimal(round(rng.uniform(low, high), -3))


def demo_lead(
    rng: random.Random,
    *,
    organization_id: UUID,
    stage_ids: list[UUID],
    advisor_ids: list[UUID],
    now: datetime,
) -> dict[str, object]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    kind = rng.choice(_NAME_B)
    business = f"{rng.choice(_NAME_A)} {kind} {rng.choice(_SUFFIX)}"
    domain = "".join(ch for ch in business.split(" ")[0].lower() if ch.isalnum())
    email_user = "".join(ch for ch in f"{first}.{last}".lower() if ch.isalnum() or ch == ".")
    created = now - timedelta(seconds=rng.randint(0, 180 * 24 * 3600))
    stage_index = rng.choices(range(len(stage_ids)), weights=_STAGE_WEIGHTS[: len(stage_ids)])[0]
    stage_changed = created + (now - created) * rng.random() if stage_index else created
    monthly = _amount(rng, 10_000, 900_000)
    # By column: store.leads.copy_leads orders them as the field table does; the columns left
    # out take their defaults.
    return {
        "organization_id": organization_id,
        "business_name": business,
        "contact_first_name": first,
        "contact_last_name": last,
        "email": f"{email_user}@{domain}{rng.randint(1, 999)}.com",
        "phone": f"555-{rng.randint(0, 9999):04d}",
        "industry": _INDUSTRY[kind],
        "monthly_revenue": monthly,
        "requested_amount": _amount(rng, 10_000, float(monthly) * 3 + 10_000),
        "source": _weighted(rng, _SOURCES),
        "priority": _weighted(rng, _PRIORITIES),
        "tags": rng.sample(_TAGS, rng.randint(0, 3)),
        "lead_score": rng.randint(1, 100) if rng.random() < 0.7 else None,
        "stage_id": stage_ids[stage_index],
        "primary_advisor_id": (
            rng.choice(advisor_ids) if advisor_ids and rng.random() < 0.85 else None
        ),
        "last_contacted_at": stage_changed if stage_index and rng.random() < 0.8 else None,
        "stage_changed_at": stage_changed,
        "created_at": created,
        "updated_at": stage_changed,
    }


async def ensure_advisors(pool: asyncpg.Pool, organization_id: UUID) -> list[UUID]:
    """The organization's advisors, creating the five demo advisors if it has none."""
    async with pool.acquire() as conn, conn.transaction():
        if not await organizations.organization_exists(conn, organization_id):
            raise NotFound(f"organization {organization_id} not found")
        existing = await catalog.advisors(conn, organization_id)
        if existing:
            return [a.id for a in existing]
        people = [(n, n.lower().replace(" ", ".") + "@lender.example") for n in ADVISOR_NAMES]
        return await catalog.insert_advisors(conn, organization_id, people)


async def add_demo_leads(
    pool: asyncpg.Pool,
    organization_id: UUID,
    count: int,
    *,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Insert `count` demo leads in COPY batches; `progress` hears the running total."""
    advisor_ids = await ensure_advisors(pool, organization_id)
    async with pool.acquire() as conn:
        stage_ids = [s.id for s in await catalog.stages(conn, organization_id)]
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    now = datetime.now(UTC)
    done = 0
    while done < count:
        size = min(_BATCH, count - done)
        batch = [
            demo_lead(
                rng,
                organization_id=organization_id,
                stage_ids=stage_ids,
                advisor_ids=advisor_ids,
                now=now,
            )
            for _ in range(size)
        ]
        async with pool.acquire() as conn:
            await leads.copy_leads(conn, batch)
        done += size
        if progress is not None:
            progress(done)
