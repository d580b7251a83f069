"""The benchmark's data: seeded through the leadgate CLI, plus the ids the workloads use."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import asyncpg
from stack import Database, leadgate, run_command, say

if TYPE_CHECKING:
    import report

SEED: Final = 42
COMMON_TERM: Final = "acme"
NO_MATCH_TERM: Final = "zzqxjv"
MOVE_LEADS: Final = 1000
LOOKUP_LEADS: Final = 1000


@dataclass(slots=True)
class Fixture:
    """What the seeding produced: organizations, keys and ids the workloads use."""

    org: str
    key: str
    write_org: str
    write_key: str
    stage_ids: list[str] = field(default_factory=list)
    lookup_ids: list[str] = field(default_factory=list)
    move_ids: list[str] = field(default_factory=list)
    statement_lead: str = ""
    rare_term: str = ""
    # Whether the schema maintains lead totals (lead_counts, sql/migrations/0002).
    maintained_total: bool = False


async def organization(db: Database, name: str) -> tuple[str, str]:
    """A new organization (default pipeline) and a write key of its own: (id, key)."""
    org = json.loads(await run_command(leadgate("org", "create", name, "--json"), db.env))
    key = json.loads(
        await run_command(
            leadgate("api-key", "create", "--org", org["id"], "--name", "bench", "--json"), db.env
        )
    )
    return org["id"], key["key"]


async def seed(db: Database, leads: int, run: report.Run) -> Fixture:
    """Migrate, create the two organizations and their keys, add the demo leads, VACUUM."""
    say(json.loads(await run_command(leadgate("migrate", "--json"), db.env)))
    org, key = await organization(db, "Bench Lending")
    write_org, write_key = await organization(db, "Bench Writes")
    started = time.monotonic()
    say(f"seeding {leads:,} leads")
    await run_command(
        leadgate("demo-data", "--org", org, "--leads", str(leads), "--seed", str(SEED)),
        db.env,
    )
    run.seed_seconds = time.monotonic() - started
    fixture = Fixture(org=org, key=key, write_org=write_org, write_key=write_key)
    conn = await asyncpg.connect(db.url)
    try:
        await conn.execute("VACUUM ANALYZE")
        run.versions["PostgreSQL"] = f"{await conn.fetchval('SHOW server_version')} ({db.kind})"
        fixture.stage_ids = [
            str(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM pipeline_stages WHERE organization_id = $1 ORDER BY position",
                org,
            )
        ]
        fixture.lookup_ids = [
            str(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM leads WHERE organization_id = $1 ORDER BY md5(id::text) LIMIT $2",
                org,
                LOOKUP_LEADS,
            )
        ]
        oldest = [
            str(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM leads WHERE organization_id = $1 ORDER BY created_at LIMIT $2",
                org,
                MOVE_LEADS + 1,
            )
        ]
        fixture.statement_lead, fixture.move_ids = oldest[0], oldest[1:]
        # A rare term: one lead's email domain word (e.g. keystone751), ~1 in 20,000 leads.
        fixture.rare_term = await conn.fetchval(
            "SELECT split_part(split_part(email, '@', 2), '.', 1) FROM leads "
            "WHERE organization_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
            org,
        )
        fixture.maintained_total = await conn.fetchval(
            "SELECT to_regclass('lead_counts') IS NOT NULL"
        )
        run.table_sizes = {
            r["relname"]: r["size"]
            for r in await conn.fetch(
                "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) AS size "
                "FROM pg_class WHERE relname IN ('leads', 'lead_events')"
            )
        }
    finally:
        await conn.close()
    return fixture


async def reset_moves(db: Database, fixture: Fixture) -> None:
    """Put the moveLead leads back in the second stage, so every move of a run is real."""
    conn = await asyncpg.connect(db.url)
    try:
        await conn.execute(
            "UPDATE leads SET stage_id = $3 WHERE organization_id = $1 AND id = ANY($2::uuid[])",
            fixture.org,
            [*fixture.move_ids, fixture.statement_lead],
            fixture.stage_ids[2],
        )
    finally:
        await conn.close()
