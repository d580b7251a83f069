"""The embedded PostgreSQL server (pgserver), used when DATABASE_URL is unset.

pgserver keeps a list of the processes holding a handle in the data directory, so `leadgate
serve` and any CLI command started beside it share one server; the last one to exit stops it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pgserver.postgres_server import get_server

log = logging.getLogger(__name__)


def embedded_database_url(pgdata: Path) -> str:
    """Start (or join) the embedded server in `pgdata` and return its connection URL."""
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    url: str = server.get_uri()
    log.info("embedded PostgreSQL ready in %s", pgdata)
    return url
