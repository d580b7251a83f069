"""The embedded PostgreSQL server (pgserver), used when DATABASE_URL is unset.

pgserver keeps a list of the processes holding a handle in the data directory, so `leadgate
serve` and any CLI command started beside it share one server; the last one to exit stops it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def embedded_database_url(pgdata: Path) -> str:
    """Start (or join) the embedded server in `pgdata` and return its connection URL."""
    # Imported here: commands that never touch the database (export-schema) stay fast, and
    # pgserver's import-time warning about a missing XDG_RUNTIME_DIR (it falls back to /tmp,
    # which is fine) is not shown to people.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    # pgserver narrates every pg_ctl call at INFO; people only need its warnings.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    url: str = server.get_uri()
    log.info("embedded PostgreSQL ready in %s", pgdata)
    return url
