"""`leadgate …` commands. Nothing imports this module."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib.util
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TextIO
from uuid import UUID

import asyncpg
from aiohttp import web

from leadgate import logs, supervisor
from leadgate.app import create_app
from leadgate.config import InvalidSetting, Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool, database_url, direct_database_url, init_connection
from leadgate.domain.documents import manifest_documents
from leadgate.domain.errors import AppError
from leadgate.domain.import_files import ImportFormat, format_from_name
from leadgate.domain.models import ROLES, Principal, Role
from leadgate.domain.rate_limits import Rate, parse_rate
from leadgate.domain.webhooks import EVENT_TYPES, Endpoint
from leadgate.events.resolver import vetting_resolver, webhook_session
from leadgate.graphql import persisted
from leadgate.graphql.schema import export_sdl
from leadgate.services import auth, demo_data, dev_tokens
from leadgate.services.documents import trust_documents
from leadgate.services.imports import Importer, ImportFile
from leadgate.services.lead_writes import WriteContext
from leadgate.services.organizations import (
    any_organization,
    create_organization,
    find_organization,
)
from leadgate.services.webhooks import EndpointWithSecret, WebhookAdmin

DEMO_ORGANIZATION: Final = "Demo Lending Co"
DEMO_LEADS: Final = 200

log = logging.getLogger("leadgate.cli")


def say(text: str = "", *, stream: TextIO | None = None) -> None:
    """Print and flush at once: keys and URLs must reach a pipe or file as they happen."""
    print(text, file=stream or sys.stdout, flush=True)


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 10 % otherwise."""

    def __init__(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.label = label
        self.started = time.monotonic()
        self._last_decile = -1
        self._tty = sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        fraction = done / self.total
        rate = done / max(time.monotonic() - self.started, 1e-9)
        bar = "#" * int(fraction * 30)
        line = f"{self.label} [{bar:<30}] {done:,}/{self.total:,} ({rate:,.0f}/s)"
        if self._tty:
            end = "\n" if done >= self.total else ""
            print(f"\r{line}", end=end, file=sys.stderr, flush=True)
        elif int(fraction * 10) != self._last_decile:
            self._last_decile = int(fraction * 10)
            print(line, file=sys.stderr, flush=True)


async def _with_pool(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    pool = await create_pool(dataclasses.replace(settings, pool_min_size=1, pool_max_size=4))
    try:
        return await work(pool)
    finally:
        await pool.close()


async def _migrate(settings: Settings) -> list[str]:
    # The migration lock is a session advisory lock: never through a transaction-mode pooler.
    conn = await asyncpg.connect(direct_database_url(settings))
    try:
        await init_connection(conn)
        return await migrate(conn)
    finally:
        await conn.close()


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

    result: tuple[UUID, str] = await _with_pool(settings, work)
    return result


async def _has_organization(settings: Settings) -> bool:
    result: bool = await _with_pool(settings, any_organization)
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
    for name in asyncio.run(_migrate(settings)):
        say(f"applied migration {name}")
    key: str | None = None
    token: str | None = None
    if args.demo:
        org_id, key = asyncio.run(_prepare_demo(settings))
        # Frontends sign in with development tokens; only a demo gateway trusts their key.
        settings = dataclasses.replace(
            settings, demo_jwks=dev_tokens.public_jwks(settings.data_dir)
        )
        token = _dev_token(settings, org_id, role="editor", ttl_seconds=3600)
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
    """uvloop's loop unless turned off or not installed (bench/RESULTS.md measures both)."""
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


def _dev_token(settings: Settings, org: UUID, *, role: Role, ttl_seconds: float) -> str:
    return dev_tokens.mint(
        settings.data_dir,
        organization_id=org,
        role=role,
        ttl_seconds=ttl_seconds,
        subject="dev-user",
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        organization_claim=settings.jwt_org_claim,
        role_claim=settings.jwt_role_claim,
    )


def cmd_dev_token(settings: Settings, args: argparse.Namespace) -> None:
    # Offline: the gateway checks the organization when the token is used.
    say(_dev_token(settings, args.org, role=args.role, ttl_seconds=args.ttl))


# Where a source checkout (and an editable install) keeps the example board.
BOARD_DIR: Final = Path(__file__).resolve().parents[2] / "examples" / "pipeline-board"


def cmd_board(_settings: Settings, args: argparse.Namespace) -> None:
    """Serve the pipeline board's static files from an origin of its own (README)."""
    directory: Path = args.dir
    index = directory / "index.html"
    if not index.is_file():
        raise AppError(f"no board in {directory} (pass --dir examples/pipeline-board)")

    async def page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(index)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_static("/", directory)
    board = f"http://{args.host}:{args.port}/?api={args.api}"
    say(f"Board:     {board}   (paste the Dev token that `make run` prints)")
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    applied = asyncio.run(_migrate(settings))
    if args.json:
        say(json.dumps({"applied": applied}))
        return
    for name in applied:
        say(f"applied {name}")
    say("database is up to date")


def cmd_org_create(settings: Settings, args: argparse.Namespace) -> None:
    org_id = asyncio.run(_with_pool(settings, lambda pool: create_organization(pool, args.name)))
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

    created: auth.CreatedKey = asyncio.run(_with_pool(settings, work))
    if args.json:
        record = {"id": str(created.id), "key": created.key, "canWrite": not args.read_only}
        say(json.dumps(record))
    else:
        say(created.key)
        say(f"(key id {created.id}; the key is shown only once)", stream=sys.stderr)


def cmd_api_key_revoke(settings: Settings, args: argparse.Namespace) -> None:
    asyncio.run(_with_pool(settings, lambda pool: auth.revoke_api_key(pool, args.id)))
    say(f"revoked {args.id}")


def cmd_demo_data(settings: Settings, args: argparse.Namespace) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await demo_data.add_demo_leads(
            pool, args.org, args.leads, seed=args.seed, progress=Progress(args.leads, "leads")
        )

    started = time.monotonic()
    asyncio.run(_with_pool(settings, work))
    say(f"added {args.leads:,} leads in {time.monotonic() - started:.1f}s")


def cmd_import(settings: Settings, args: argparse.Namespace) -> None:
    path = Path(args.file)
    file_format = ImportFormat(args.format) if args.format else format_from_name(path.name)
    if file_format is None:
        say("error: name the format with --format (the file is not .csv, .ndjson or .jsonl)")
        raise SystemExit(2)
    upload = ImportFile(data=path.read_bytes(), format=file_format, filename=path.name)
    ctx = WriteContext(principal=_operator(args.org), request_id="cli")

    async def work(pool: asyncpg.Pool) -> None:
        importer = Importer(
            pool,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            notify=settings.writes_notify,
        )
        if args.dry_run:
            report = await importer.dry_run(ctx.principal, upload)
            for row, field, message in report.errors[:100]:
                say(f"row {row}: {field or '(row)'} {message}")
            say(f"dry run: {report.total:,} rows, {report.valid:,} valid, nothing written")
            return
        job = await importer.import_now(ctx, upload, progress=lambda total: Progress(total, "rows"))
        say(
            f"import {job.id} {job.status}: {job.created_count:,} created, "
            f"{job.failed_count:,} failed of {job.total_rows:,} "
            f"(errors: GET /v1/imports/{job.id}/errors)"
        )

    started = time.monotonic()
    asyncio.run(_with_pool(settings, work))
    say(f"in {time.monotonic() - started:.1f}s")


def _operator(org: UUID) -> Principal:
    """The command line acts for an organization with full rights (it has the database)."""
    return Principal(organization_id=org, role="admin", actor=None)


async def _with_webhooks(settings: Settings, work: Callable[[WebhookAdmin], Awaitable[Any]]) -> Any:
    async def run(pool: asyncpg.Pool) -> Any:
        resolver = vetting_resolver(settings)
        try:
            async with webhook_session(resolver) as session:
                return await work(WebhookAdmin(pool, session, settings, resolver))
        finally:
            await resolver.close()

    return await _with_pool(settings, run)


def cmd_webhook_add(settings: Settings, args: argparse.Namespace) -> None:
    types = args.events.split(",") if args.events else list(EVENT_TYPES)

    async def work(admin: WebhookAdmin) -> EndpointWithSecret:
        return await admin.create(_operator(args.org), url=args.url, event_types=types)

    created: EndpointWithSecret = asyncio.run(_with_webhooks(settings, work))
    endpoint = created.endpoint
    if args.json:
        say(
            json.dumps(
                {
                    "id": str(endpoint.id),
                    "url": endpoint.url,
                    "eventTypes": endpoint.event_types,
                    "secret": created.secret,
                }
            )
        )
    else:
        say(f"{endpoint.id}  {endpoint.url}  {','.join(endpoint.event_types)}")
        say(f"secret: {created.secret}   (shown once; verify signatures with it)")


def cmd_webhook_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(admin: WebhookAdmin) -> list[Endpoint]:
        return await admin.endpoints(_operator(args.org))

    found: list[Endpoint] = asyncio.run(_with_webhooks(settings, work))
    if args.json:
        say(
            json.dumps(
                [
                    {
                        "id": str(e.id),
                        "url": e.url,
                        "eventTypes": e.event_types,
                        "enabled": e.enabled,
                    }
                    for e in found
                ]
            )
        )
        return
    for e in found:
        state = "enabled" if e.enabled else f"disabled ({e.disabled_reason or 'by hand'})"
        say(f"{e.id}  {e.url}  {','.join(e.event_types)}  {state}")


def cmd_webhook_rm(settings: Settings, args: argparse.Namespace) -> None:
    async def work(admin: WebhookAdmin) -> None:
        await admin.delete(_operator(args.org), args.id)

    asyncio.run(_with_webhooks(settings, work))
    say(f"removed {args.id}")


def cmd_documents_add(settings: Settings, args: argparse.Namespace) -> None:
    try:
        manifest = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AppError(f"cannot read the manifest {args.file}: {exc}") from exc
    found = manifest_documents(manifest, max_chars=settings.max_body_bytes)
    for document in found:
        persisted.check_syntax(document, max_tokens=settings.max_document_tokens)
    trusted = asyncio.run(_with_pool(settings, lambda pool: trust_documents(pool, found)))
    say(
        f"{len(found)} trusted documents from {args.file}: {trusted.added} added, "
        f"{trusted.promoted} trusted now (registered by APQ before), {trusted.already} "
        "already trusted"
    )


def cmd_export_schema(_settings: Settings, _args: argparse.Namespace) -> None:
    sys.stdout.write(export_sdl())
    sys.stdout.flush()


_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    """`90`, `90s`, `15m`, `1h` or `2d` as seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _DURATION_UNITS else (text, "s")
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError("a duration such as 90s, 15m, 1h or 2d") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError("must be more than 0")
    return seconds


def _rate(text: str) -> Rate:
    """`RATE` or `RATE,BURST` points per second (README "Rate limits")."""
    try:
        return parse_rate(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "points per second > 0, optionally ,BURST ≥ 1 (e.g. 10 or 10,100)"
        ) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadgate",
        description="GraphQL gateway over a lending pipeline's leads. The database is "
        "DATABASE_URL, or an embedded PostgreSQL in $LEADGATE_DATA_DIR/pg (default "
        ".leadgate/pg) shared by every leadgate process on that directory.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate, then serve GraphQL, GraphiQL and /v1")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="local demo: ensure the demo organization (200 leads), print a fresh write "
        "key and pre-fill GraphiQL with it, allow http webhook targets. Without it nothing "
        "is created and GraphiQL embeds no key",
    )
    serve.add_argument(
        "--workers",
        type=supervisor.worker_count,
        default=1,
        metavar="N",
        help="gateway processes sharing the port under a supervisor that replaces any that "
        "dies (`auto`: one per CPU; default 1: this process serves)",
    )
    serve.set_defaults(run=cmd_serve)

    mig = commands.add_parser("migrate", help="apply pending sql/migrations")
    mig.add_argument("--json", action="store_true")
    mig.set_defaults(run=cmd_migrate)

    org = commands.add_parser("org", help="organizations").add_subparsers(
        dest="org_command", required=True, metavar="ACTION"
    )
    org_create = org.add_parser("create", help="create an organization with the default stages")
    org_create.add_argument("name")
    org_create.add_argument("--json", action="store_true")
    org_create.set_defaults(run=cmd_org_create)

    key = commands.add_parser("api-key", help="API keys").add_subparsers(
        dest="key_command", required=True, metavar="ACTION"
    )
    key_create = key.add_parser("create", help="create a key (printed once)")
    key_create.add_argument("--org", type=UUID, required=True, help="organization id")
    key_create.add_argument("--read-only", action="store_true", help="no write permission")
    key_create.add_argument("--name", default="", help="a label for people")
    key_create.add_argument("--test", action="store_true", help="an lw_test_ key")
    key_create.add_argument(
        "--rate",
        type=_rate,
        default=None,
        metavar="RATE[,BURST]",
        help="this key's own rate limit in points per second (and bucket), over "
        "LEADGATE_RATE_PER_CREDENTIAL",
    )
    key_create.add_argument("--json", action="store_true")
    key_create.set_defaults(run=cmd_api_key_create)
    key_revoke = key.add_parser("revoke", help="revoke a key (effective within 5 s)")
    key_revoke.add_argument("id", type=UUID, help="key id")
    key_revoke.set_defaults(run=cmd_api_key_revoke)

    demo = commands.add_parser("demo-data", help="add realistic demo leads to an organization")
    demo.add_argument("--org", type=UUID, required=True)
    demo.add_argument("--leads", type=_positive, default=1000)
    demo.add_argument("--seed", type=int, default=None, help="for repeatable data")
    demo.set_defaults(run=cmd_demo_data)

    imp = commands.add_parser("import", help="import leads from a CSV or JSON lines file")
    imp.add_argument("file", help="CSV with a header row (.csv) or JSON lines (.ndjson, .jsonl)")
    imp.add_argument("--org", type=UUID, required=True)
    imp.add_argument("--format", choices=[f.value for f in ImportFormat], default=None)
    imp.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    imp.set_defaults(run=cmd_import)

    hooks = commands.add_parser("webhook", help="webhook endpoints").add_subparsers(
        dest="webhook_command", required=True, metavar="ACTION"
    )
    hook_add = hooks.add_parser("add", help="send events to a URL (prints the secret once)")
    hook_add.add_argument("--org", type=UUID, required=True)
    hook_add.add_argument("url")
    hook_add.add_argument(
        "--events", default="", help=f"comma-separated, default all: {','.join(EVENT_TYPES)}"
    )
    hook_add.add_argument("--json", action="store_true")
    hook_add.set_defaults(run=cmd_webhook_add)
    hook_list = hooks.add_parser("list", help="an organization's endpoints")
    hook_list.add_argument("--org", type=UUID, required=True)
    hook_list.add_argument("--json", action="store_true")
    hook_list.set_defaults(run=cmd_webhook_list)
    hook_rm = hooks.add_parser("rm", help="remove an endpoint and its pending deliveries")
    hook_rm.add_argument("--org", type=UUID, required=True)
    hook_rm.add_argument("id", type=UUID)
    hook_rm.set_defaults(run=cmd_webhook_rm)

    token = commands.add_parser(
        "dev-token",
        help="mint a development token for a frontend (trusted by `serve --demo` only)",
    )
    token.add_argument("--org", type=UUID, required=True, help="organization id")
    token.add_argument("--role", choices=ROLES, default="editor")
    token.add_argument("--ttl", type=_duration, default=3600.0, help="e.g. 15m, 1h (default)")
    token.set_defaults(run=cmd_dev_token)

    board = commands.add_parser(
        "board", help="serve the example pipeline board (examples/pipeline-board)"
    )
    board.add_argument("--host", default="127.0.0.1")
    board.add_argument("--port", type=int, default=8081)
    board.add_argument(
        "--api", default="http://127.0.0.1:8080", help="the gateway, put in the printed URL"
    )
    board.add_argument("--dir", type=Path, default=BOARD_DIR, help="the board's files")
    board.set_defaults(run=cmd_board)

    docs = commands.add_parser("documents", help="persisted documents").add_subparsers(
        dest="documents_command", required=True, metavar="ACTION"
    )
    docs_add = docs.add_parser(
        "add",
        help="trust a client's manifest (Apollo's persisted-query manifest or GraphQL "
        "Codegen's persisted-documents.json): see LEADGATE_TRUSTED_DOCUMENTS",
    )
    docs_add.add_argument("file", type=Path)
    docs_add.set_defaults(run=cmd_documents_add)

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.set_defaults(run=cmd_export_schema)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(Settings.from_env(), args)
    except InvalidSetting as exc:
        # A configuration mistake, like a bad argument: argparse's status, no traceback.
        say(f"error: {exc}", stream=sys.stderr)
        raise SystemExit(2) from exc
    except AppError as exc:
        say(f"error: {exc.message}", stream=sys.stderr)
        raise SystemExit(1) from exc
    except (OSError, asyncpg.PostgresError) as exc:
        say(f"error: cannot use the database: {exc}", stream=sys.stderr)
        raise SystemExit(1) from exc
    except KeyboardInterrupt:
        raise SystemExit(130) from None
