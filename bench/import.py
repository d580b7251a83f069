"""Bulk import rate: `leadgate import` of a generated CSV file, end to end.

    .venv/bin/python bench/import.py [--rows 100000]      (make bench-import)

On a throwaway database of DATABASE_URL's server (or an embedded PostgreSQL), creates an
organization with a webhook endpoint for lead.created (so every lead also gets its pending
delivery, as in production), writes a CSV of N leads with every common field filled and 1 %
of rows invalid (a bad email), and times the `leadgate import` process from start to exit:
reading, validating each row, batches of 1000 leads with their lead.created events, webhook
deliveries and NOTIFYs, the refused rows. It then checks the counts in the database and
appends a row to bench/IMPORT.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from uuid import UUID

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from subscribers import LEADGATE, bench_database  # noqa: E402 - a sibling script

REPORT: Final = Path(__file__).resolve().parent / "IMPORT.md"
REPORT_HEADER: Final = """# Bulk import: `leadgate import` of a CSV file

Produced by `bench/import.py` (see its docstring): the wall time of the whole `leadgate import`
process (Python start-up included) on this 2-core machine, 1 % of rows refused, one webhook
endpoint subscribed to lead.created.

| date | rows | created | failed | seconds | rows/s | database |
|---|---:|---:|---:|---:|---:|---|
"""
HEADER: Final = (
    "businessName,contactFirstName,contactLastName,email,phone,industry,monthlyRevenue,"
    "requestedAmount,tags,customFields,priority\n"
)
INDUSTRIES: Final = ("Bakery", "Construction", "Dental", "Logistics", "Retail", "Software")
PRIORITIES: Final = ("low", "normal", "high", "urgent")
ADD_ENDPOINT: Final = """
INSERT INTO webhook_endpoints (organization_id, url, secret, event_types)
VALUES ($1, 'https://hooks.example.com/leadgate', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        ARRAY['lead.created'])
"""


def write_csv(path: Path, rows: int, seed: int = 7) -> int:
    """The file, and how many of its rows are invalid."""
    rng = random.Random(seed)  # noqa: S311 - test data
    invalid = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for i in range(rows):
            bad = i % 100 == 99
            invalid += bad
            email = f"owner{i}-at-example.com" if bad else f"owner{i}@example{i % 97}.com"
            out.write(
                f"Business {i} LLC,First{i},Last{i},{email},+1555{i:07d},"
                f"{rng.choice(INDUSTRIES)},{rng.randint(1000, 900000)},{rng.randint(5000, 500000)},"
                f'imported;batch{i % 10},"{{""row"": {i}, ""region"": ""r{i % 7}""}}",'
                f"{rng.choice(PRIORITIES)}\n"
            )
    return invalid


async def run(command: list[str], env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stdout.decode()}\n{stderr.decode()}")
    return stdout.decode()


async def main(rows: int) -> None:
    async with bench_database() as (env, label):
        await run([str(LEADGATE), "migrate"], env)
        org = UUID((await run([str(LEADGATE), "org", "create", "Import Bench"], env)).strip())
        database = env.get("DATABASE_URL")
        if database:
            conn = await asyncpg.connect(database)
            try:
                await conn.execute(ADD_ENDPOINT, org)
            finally:
                await conn.close()
        with tempfile.TemporaryDirectory() as workdir:
            path = Path(workdir) / "leads.csv"
            invalid = write_csv(path, rows)
            started = time.perf_counter()
            out = await run([str(LEADGATE), "import", str(path), "--org", str(org)], env)
            seconds = time.perf_counter() - started
        print(out.strip())
        created = rows - invalid
        if database:
            conn = await asyncpg.connect(database)
            try:
                leads = await conn.fetchval(
                    "SELECT count(*) FROM leads WHERE organization_id = $1", org
                )
                events = await conn.fetchval(
                    "SELECT count(*) FROM lead_events WHERE organization_id = $1", org
                )
                deliveries = await conn.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE organization_id = $1", org
                )
            finally:
                await conn.close()
            assert leads == events == deliveries == created, (leads, events, deliveries)
        assert f"{created:,} created, {invalid:,} failed" in out, out
    rate = rows / seconds
    print(f"{rows:,} rows in {seconds:.1f} s: {rate:,.0f} rows/s ({label})")
    if not REPORT.exists():
        REPORT.write_text(REPORT_HEADER)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    with REPORT.open("a") as report:
        report.write(
            f"| {day} | {rows:,} | {created:,} | {invalid:,} | {seconds:.1f} | {rate:,.0f} "
            f"| {label} |\n"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main(args.rows))
