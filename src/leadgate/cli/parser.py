"""The command line: every command, its arguments, and the module that runs it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final
from uuid import UUID

from leadgate import supervisor
from leadgate.cli.arguments import duration, non_negative, rate
from leadgate.domain.import_files import ImportFormat
from leadgate.domain.models import ROLES
from leadgate.domain.webhooks import EVENT_TYPES

# Where a source checkout (and an editable install) keeps the example board.
BOARD_DIR: Final = Path(__file__).resolve().parents[3] / "examples" / "pipeline-board"


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
    serve.set_defaults(run="serve:cmd_serve")

    mig = commands.add_parser("migrate", help="apply pending sql/migrations")
    mig.add_argument("--json", action="store_true")
    mig.set_defaults(run="admin:cmd_migrate")

    org = commands.add_parser("org", help="organizations").add_subparsers(
        dest="org_command", required=True, metavar="ACTION"
    )
    org_create = org.add_parser("create", help="create an organization with the default stages")
    org_create.add_argument("name")
    org_create.add_argument("--json", action="store_true")
    org_create.set_defaults(run="admin:cmd_org_create")

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
        type=rate,
        default=None,
        metavar="RATE[,BURST]",
        help="this key's own rate limit in points per second (and bucket), over "
        "LEADGATE_RATE_PER_CREDENTIAL",
    )
    key_create.add_argument("--json", action="store_true")
    key_create.set_defaults(run="admin:cmd_api_key_create")
    key_revoke = key.add_parser("revoke", help="revoke a key (effective within 5 s)")
    key_revoke.add_argument("id", type=UUID, help="key id")
    key_revoke.set_defaults(run="admin:cmd_api_key_revoke")

    demo = commands.add_parser("demo-data", help="add realistic demo leads to an organization")
    demo.add_argument("--org", type=UUID, required=True)
    demo.add_argument("--leads", type=non_negative, default=1000)
    demo.add_argument("--seed", type=int, default=None, help="for repeatable data")
    demo.set_defaults(run="admin:cmd_demo_data")

    imp = commands.add_parser("import", help="import leads from a CSV or JSON lines file")
    imp.add_argument("file", help="CSV with a header row (.csv) or JSON lines (.ndjson, .jsonl)")
    imp.add_argument("--org", type=UUID, required=True)
    imp.add_argument("--format", choices=[f.value for f in ImportFormat], default=None)
    imp.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    imp.set_defaults(run="imports:cmd_import")

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
    hook_add.set_defaults(run="webhooks:cmd_webhook_add")
    hook_list = hooks.add_parser("list", help="an organization's endpoints")
    hook_list.add_argument("--org", type=UUID, required=True)
    hook_list.add_argument("--json", action="store_true")
    hook_list.set_defaults(run="webhooks:cmd_webhook_list")
    hook_rm = hooks.add_parser("rm", help="remove an endpoint and its pending deliveries")
    hook_rm.add_argument("--org", type=UUID, required=True)
    hook_rm.add_argument("id", type=UUID)
    hook_rm.set_defaults(run="webhooks:cmd_webhook_rm")

    token = commands.add_parser(
        "dev-token",
        help="mint a development token for a frontend (trusted by `serve --demo` only)",
    )
    token.add_argument("--org", type=UUID, required=True, help="organization id")
    token.add_argument("--role", choices=ROLES, default="editor")
    token.add_argument("--ttl", type=duration, default=3600.0, help="e.g. 15m, 1h (default)")
    token.set_defaults(run="tokens:cmd_dev_token")

    board = commands.add_parser(
        "board", help="serve the example pipeline board (examples/pipeline-board)"
    )
    board.add_argument("--host", default="127.0.0.1")
    board.add_argument("--port", type=int, default=8081)
    board.add_argument(
        "--api", default="http://127.0.0.1:8080", help="the gateway, put in the printed URL"
    )
    board.add_argument("--dir", type=Path, default=BOARD_DIR, help="the board's files")
    board.set_defaults(run="board:cmd_board")

    docs = commands.add_parser("documents", help="persisted documents").add_subparsers(
        dest="documents_command", required=True, metavar="ACTION"
    )
    docs_add = docs.add_parser(
        "add",
        help="trust a client's manifest (Apollo's persisted-query manifest or GraphQL "
        "Codegen's persisted-documents.json): see LEADGATE_TRUSTED_DOCUMENTS",
    )
    docs_add.add_argument("file", type=Path)
    docs_add.set_defaults(run="documents:cmd_documents_add")

    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.set_defaults(run="schema:cmd_export_schema")
    return parser
