"""Database and tenant administration: migrate, organizations, API keys, demo data."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import asyncpg

from leadgate.cli.database import migrate_database, with_pool
from leadgate.cli.output import Progress, say
from leadgate.config import Settings
from leadgate.services import auth, demo_data
from leadgate.services.organizations import create_organization


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    applied = asyncio.run(migrate_database(settings))
    if args.json:
        say(json.dumps({"applied": applied}))
        return
    for name in applied:
        say(f"applied {name}")
    say("database is up to date")


def cmd_org_create(settings: Settings, args: argparse.Namespace) -> None:
    org_id = asyncio.run(with_pool(settings, lambda pool: create_organization(pool, args.name)))
    say(json.dumps({"id": str(org_id), "name": args.name}) if args.json else str(org_id))


def cmd_api_key_create(settings: Settings, args: argparse.Namespace) -> None:
    async def work(pool: asyncpg.Pool) -> auth.CreatedKey:
        return await auth.create_api_key(
            pool,
            organization_id=args.org,
            can_write=not args.read_only,
            name=args.name,
            live=not args.test,
            rate=args.rate,
        )

    created: auth.CreatedKey = asyncio.run(with_pool(settings, work))
    if args.json:
        record = {"id": str(created.id), "key": created.key, "canWrite": not args.read_only}
        say(json.dumps(record))
    else:
        say(created.key)
        say(f"(key id {created.id}; the key is shown only once)", stream=sys.stderr)


def cmd_api_key_revoke(settings: Settings, args: argparse.Namespace) -> None:
    asyncio.run(with_pool(settings, lambda pool: auth.revoke_api_key(pool, args.id)))
    say(f"revoked {args.id}")


def cmd_demo_data(settings: Settings, args: argparse.Namespace) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await demo_data.add_demo_leads(
            pool, args.org, args.leads, seed=args.seed, progress=Progress(args.leads, "leads")
        )

    started = time.monotonic()
    asyncio.run(with_pool(settings, work))
    say(f"added {args.leads:,} leads in {time.monotonic() - started:.1f}s")
