"""The embedded PostgreSQL server (pgserver), used when DATABASE_URL is unset.

pgserver keeps a list of the processes holding a handle (`<pgdata>/.handle_pids.json`), so
`leadgate serve` and any CLI command started beside it share one server, and the process
that removes the last pid from that list stops it. A process killed with SIGKILL never
removes its pid, so after one `kill -9` the server outlived everyone (issue 8, item 10).

So each leadgate process also holds an exclusive `flock` on a file of its own in
`<pgdata>.handles/`: the kernel drops that lock when the process dies, however it dies, and a
lock nobody holds proves its pid dead (a recycled pid cannot fake it: it holds no lock on the
old file). Joining and leaving happen under one more flock on that directory, and both first
strike the dead from pgserver's list, so the last live process to leave stops the server.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

log = logging.getLogger(__name__)

# pgserver's record of the pids holding a handle; its format is a JSON list of ints.
PGSERVER_PIDS: Final = ".handle_pids.json"
_LOCK_NAME: Final = "registry.lock"

# This process's handle files (pgdata → open descriptor holding the flock), and the
# servers it joined: kept for the life of the process, which is what the lock attests.
_held: dict[Path, int] = {}
_joined: dict[Path, PostgresServer] = {}


def handles_dir(pgdata: Path) -> Path:
    """Beside, not inside, pgdata: initdb refuses a directory that is not empty."""
    return pgdata.with_name(pgdata.name + ".handles")


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
    joined = _joined.get(pgdata)
    if joined is not None:
        url: str = joined.get_uri()
        return url
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _registry_lock(pgdata):
        _hold_handle(pgdata)
        _forget_dead(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
        # pgserver's own exit hook leaves without our lock and without pruning; ours does both.
        atexit.unregister(server._cleanup)
        atexit.register(_leave, pgdata, server)
        _joined[pgdata] = server
    url = server.get_uri()
    log.info("embedded PostgreSQL ready in %s", pgdata)
    return url


def _leave(pgdata: Path, server: PostgresServer) -> None:
    """At exit: drop the dead, then let pgserver remove us and stop the server if we're last."""
    with _registry_lock(pgdata):
        _forget_dead(pgdata)
        server._cleanup()
        _release_handle(pgdata)
    _joined.pop(pgdata, None)


@contextlib.contextmanager
def _registry_lock(pgdata: Path) -> Iterator[None]:
    directory = handles_dir(pgdata)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _handle_file(pgdata: Path, pid: int) -> Path:
    return handles_dir(pgdata) / f"{pid}.pid"


def _hold_handle(pgdata: Path) -> None:
    if pgdata in _held:
        return
    fd = os.open(_handle_file(pgdata, os.getpid()), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held[pgdata] = fd


def _release_handle(pgdata: Path) -> None:
    fd = _held.pop(pgdata, None)
    if fd is None:
        return
    with contextlib.suppress(FileNotFoundError):
        _handle_file(pgdata, os.getpid()).unlink()
    os.close(fd)


def _is_alive(pgdata: Path, pid: int) -> bool:
    """Whether `pid` still holds its handle; a pid without a handle file falls back to the pid
    table (a pgserver user other than leadgate), which is the best that can be known of it."""
    if pid == os.getpid():
        return True
    path = _handle_file(pgdata, pid)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return _pid_exists(pid)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        path.unlink()  # under the registry lock: nobody can be taking it up meanwhile
        return False
    finally:
        os.close(fd)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead(pgdata: Path) -> None:
    """Strike from pgserver's pid list every process that no longer holds its handle."""
    # Imported late for the same reason as get_server.
    from pgserver.utils import DiskList

    record = DiskList(pgdata / PGSERVER_PIDS)
    pids = record.get()
    alive = [pid for pid in pids if _is_alive(pgdata, pid)]
    if alive != pids:
        log.warning(
            "embedded PostgreSQL: forgetting exited processes %s", sorted(set(pids) - set(alive))
        )
        record.put(alive)
