"""`leadgate serve`: migrate, prepare a demo if asked, then one gateway or a supervisor of N."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib.util
import logging
import os
import socket
from typing import Final
from uuid import UUID

import asyncpg
from aiohttp import web

from leadgate import logs, supervisor
from leadgate.app import create_app
from leadgate.cli.database import migrate_database, with_pool
from leadgate.cli.output import Progress, say
from leadgate.cli.tokens import dev_token
from leadgate.config import Settings
from leadgate.db.pool import database_url
from leadgate.services import auth, demo_data, dev_tokens
from leadgate.services.organizations import (
    any_organization,
    create_organization,
    find_organization,
)

DEMO_ORGANIZATION: Final = "Demo Lending Co"
DEMO_LEADS: Final = 200

log = logging.getLogger(__name__)


async def _prepare_demo(settings: Settings) -> tuple[UUID, str]:
    """--demo only: the demo organization with its leads (once), and a fresh write key."""

    async def work(pool: asyncpg.Pool) -> tuple[UUID, str]:
        org_id = await find_organization(pool, DEMO_ORGANIZATION)
        if org_id is None:
            org_id = await create_organization(pool, DEMO_ORGANIZATION)
            await demo_data.add_demo_leads(
                pool, org_id, DEMO_LEADS, progress=Progress(DEMO_LEADS, "demo leads")
            )
            say(f"Created demo organization {DEMO_ORGANIZATION} ({org_id})")
        created = await auth.create_api_key(
            pool, organization_id=org_id, can_write=True, name="demo (leadgate serve)"
        )
        return org_id, created.key

    result: tuple[UUID, str] = await with_pool(settings, work)
    return result


async def _has_organization(settings: Settings) -> bool:
    result: bool = await with_pool(settings, any_organization)
    return result


def _explain_first_steps() -> None:
    """An empty production database gets nothing made for it: say how to make the first key.

    Creating one here would put a write key in the log and in the public GraphiQL page of a
    server nobody has secured yet (issue 8, item 1).
    """
    log.warning(
        "the database has no organization yet; create one and a key for it with:\n"
        '    leadgate org create "Your Company"\n'
        "    leadgate api-key create --org <organization id printed above>\n"
        "(run them with this server's DATABASE_URL / LEADGATE_DATA_DIR; "
        "`leadgate serve --demo` instead fills the database with demo data)"
    )


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    logs.configure(settings.log_format)
    settings = dataclasses.replace(settings, database_url=database_url(settings))
    for name in asyncio.run(migrate_database(settings)):
        say(f"applied migration {name}")
    key: str | None = None
    token: str | None = None
    if args.demo:
        org_id, key = asyncio.run(_prepare_demo(settings))
        # Frontends sign in with development tokens; only a demo gateway trusts their key.
        settings = dataclasses.replace(
            settings, demo_jwks=dev_tokens.public_jwks(settings.data_dir)
        )
        token = dev_token(settings, org_id, role="editor", ttl_seconds=3600)
        # Only a demo's GraphiQL page is pre-filled with a key; a production page shows a
        # placeholder, since anyone who can load it would otherwise hold write access.
        settings = dataclasses.replace(settings, graphiql_api_key=key)
        # A frontend served on another local port (the board, a dev server) may call it.
        settings = dataclasses.replace(settings, cors_loopback=True)
        if "LEADGATE_ALLOW_INSECURE_WEBHOOKS" not in os.environ:
            # A local demo's receiver is http://localhost; production keeps the https-only rule.
            settings = dataclasses.replace(settings, allow_insecure_webhooks=True)
    elif not asyncio.run(_has_organization(settings)):
        _explain_first_steps()
    url = f"http://{args.host}:{args.port}/graphql"
    say(f"GraphiQL:  {url}")
    if key is not None:
        say(f"API key:   {key}   (write access; shown once)")
        query = '{"query":"{ leads(limit:5) { total nodes { businessName } } }"}'
        say(
            f"Try:       curl -H 'Authorization: Bearer {key}' "
            f"-H 'Content-Type: application/json' -d '{query}' {url}"
        )
    if token is not None:
        say(f"Dev token: {token}   (editor, 1 h; more: leadgate dev-token --org <id>)")
    if args.workers == 1:
        _serve(settings, host=args.host, port=args.port)
        return
    # Migrated and prepared above, once; each worker is a whole gateway on the shared socket.
    # The embedded server (if any) belongs to this process: workers get its URL in settings.
    workers = supervisor.Supervisor(
        count=args.workers,
        sock=supervisor.listen(args.host, args.port),
        serve=lambda sock: _serve(settings, sock=sock),
        shutdown_timeout=settings.shutdown_timeout_seconds,
    )
    raise SystemExit(workers.run())


def _serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
) -> None:
    app = create_app(settings)
    app.on_startup.append(_settle_heap)
    app.on_startup.append(_report_event_loop)
    # Access logging costs every request a formatted line; on with LEADGATE_ACCESS_LOG=1.
    access_log = logging.getLogger("aiohttp.access") if settings.access_log else None
    # SIGTERM: stop accepting, close WebSockets (1001), give in-flight requests this long.
    web.run_app(
        app,
        host=host,
        port=port,
        sock=sock,
        print=None,
        access_log=access_log,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        loop=_event_loop(settings),
    )


def _event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """uvloop's loop when turned on and installed (bench/RESULTS.md measures both)."""
    if settings.uvloop and importlib.util.find_spec("uvloop") is not None:
        import uvloop  # noqa: PLC0415 - optional: absent where it has no wheels

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _report_event_loop(_app: web.Application) -> None:
    loop = type(asyncio.get_running_loop())
    log.info("serving on the event loop %s.%s", loop.__module__, loop.__qualname__)


async def _settle_heap(_app: web.Application) -> None:
    """Fewer, cheaper garbage collections for a long-running server.

    A request allocates thousands of short-lived objects (a page's leads, a subscription
    fan-out's payloads); the default generation-0 threshold of 700 then runs the collector
    many times per request (with collection off, a 1,000-subscriber fan-out measured about
    half the CPU, see bench/SUBSCRIBERS.md). Objects alive at start-up (modules, schema) are
    frozen out of collection altogether.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
