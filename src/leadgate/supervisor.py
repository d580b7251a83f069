"""`leadgate serve --workers N`: one supervisor, N gateway processes on one listening socket.

The supervisor binds the socket once and forks the workers, which inherit it and accept from
its single queue (gunicorn's and uvicorn's model) rather than each binding with SO_REUSEPORT:
a port already taken fails once, before any worker starts; connections waiting in the queue
survive a worker's death and its restart (a SO_REUSEPORT socket's own queue is reset with
it); and no other process of the same user can join the port. The cost is a less even spread
under light load (whichever worker wakes first accepts), which evens out once workers are busy.

Each worker is a whole gateway (its own pool, LISTEN connection, dispatcher) and stops
gracefully on SIGTERM (aiohttp's run_app). The supervisor forwards SIGTERM and SIGINT to
them, replaces a worker that exits with a backoff that grows while replacements die young, and
SIGKILLs what is still running after the shutdown bound. Workers run in a process group of
their own, so a terminal's Ctrl-C reaches only the supervisor (one orderly stop, not two
signals each), and ask the kernel for SIGTERM should the supervisor die without forwarding.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Final

log = logging.getLogger(__name__)

# A worker that lived this long was healthy: its replacement starts at once.
STABLE_SECONDS: Final = 10.0
FIRST_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 30.0
# After the workers' own shutdown bound: time to close pools and exit.
EXIT_GRACE_SECONDS: Final = 5.0
BACKLOG: Final = 1024
_PR_SET_PDEATHSIG: Final = 1

Serve = Callable[[socket.socket], None]


def worker_count(text: str) -> int:
    """`--workers`: a count ≥ 1, or `auto` for one per CPU."""
    if text == "auto":
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        import argparse  # only on this error path

        raise argparse.ArgumentTypeError("a number ≥ 1 or auto")
    return count


def listen(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


@dataclass
class _Slot:
    """One of the N places a worker runs in, and its history of early deaths."""

    number: int
    process: multiprocessing.process.BaseProcess | None = None
    started: float = 0.0
    due: float = 0.0  # when a replacement may start
    early_deaths: int = 0


@dataclass
class Supervisor:
    count: int
    sock: socket.socket
    serve: Serve
    shutdown_timeout: float
    _slots: list[_Slot] = field(default_factory=list)
    _stopping: bool = False
    _signals: int = 0
    _terminated: set[int] = field(default_factory=set)

    def run(self) -> int:
        """Run the workers until SIGTERM or SIGINT; stop them all and return the exit code."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._slots = [_Slot(number) for number in range(self.count)]
            log.info("supervisor %d starting %d workers", os.getpid(), self.count)
            while not self._stopping:
                self._start_due()
                self._wait(wake_read)
                self._reap()
            self._stop_all()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_read)
            os.close(wake_write)
            self.sock.close()
        return 0

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None and s.process.pid]

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("supervisor: %s, stopping the workers", signal.Signals(signum).name)
            self._stopping = True
            self._send(signal.SIGTERM)
        else:
            log.warning("supervisor: a second signal, killing the workers")
            self._send(signal.SIGKILL)

    def _send(self, signum: int) -> None:
        for pid in self.pids():
            # Once only: aiohttp takes a second SIGTERM as a second exit, abandoning cleanup.
            if signum == signal.SIGTERM and pid in self._terminated:
                continue
            self._terminated.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.process is None and slot.due <= now:
                self._start(slot)

    def _start(self, slot: _Slot) -> None:
        # fork: a worker starts in milliseconds with the socket and the settings already in
        # hand (no re-import, nothing pickled); the supervisor runs no threads or event loop.
        context = multiprocessing.get_context("fork")
        process = context.Process(
            target=_worker, args=(self.serve, self.sock, os.getpid()), name=f"worker-{slot.number}"
        )
        process.start()
        slot.process, slot.started = process, time.monotonic()
        log.info("supervisor: worker %d started (pid %d)", slot.number, process.pid)

    def _wait(self, wake_read: int) -> None:
        running = [s.process.sentinel for s in self._slots if s.process is not None]
        now = time.monotonic()
        pending = [s.due - now for s in self._slots if s.process is None]
        timeout = max(0.0, min(pending)) if pending else None
        ready = multiprocessing.connection.wait([*running, wake_read], timeout)
        if wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_read, 512):
                    pass

    def _reap(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            process = slot.process
            if process is None or process.is_alive():
                continue
            process.join()
            slot.process = None
            if self._stopping:
                continue
            lived = now - slot.started
            slot.early_deaths = 0 if lived >= STABLE_SECONDS else slot.early_deaths + 1
            delay = (
                0.0
                if slot.early_deaths == 0
                else min(FIRST_BACKOFF * 2 ** (slot.early_deaths - 1), MAX_BACKOFF)
            )
            slot.due = now + delay
            log.warning(
                "supervisor: worker %d (pid %d) exited with %s after %.1fs; replacing it in %.1fs",
                slot.number,
                process.pid,
                process.exitcode,
                lived,
                delay,
            )

    def _stop_all(self) -> None:
        self._send(signal.SIGTERM)  # a worker started as the signal came has not had it
        deadline = time.monotonic() + self.shutdown_timeout + EXIT_GRACE_SECONDS
        for slot in self._slots:
            if slot.process is None:
                continue
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.warning("supervisor: worker %d outlived the shutdown; killing it", slot.number)
                slot.process.kill()
                slot.process.join()
            slot.process = None
        log.info("supervisor: every worker stopped")


def _worker(serve: Serve, sock: socket.socket, supervisor: int) -> None:
    """A forked worker's first steps, then the gateway until SIGTERM."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.setpgid(0, 0)
    _die_with(supervisor)
    serve(sock)


def _die_with(supervisor: int) -> None:
    """SIGTERM from the kernel when the supervisor dies (even by SIGKILL): no orphans."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != supervisor:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
