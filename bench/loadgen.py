"""wrk runs: what a run drives (Case), what it measured (Measurement, Series)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from stack import ROOT

WRK_DIR: Final = ROOT / "bench" / "wrk"


@dataclass(frozen=True, slots=True)
class Case:
    """One target under one workload: what a wrk run drives."""

    workload: str
    target: str
    url: str
    script: str  # static.lua or dynamic.lua
    args: tuple[str, ...]
    connections: int
    # A per-run value (a unique idempotency-key prefix) appended to args.
    unique_suffix: bool = False
    # Called before every run of this case (moveLead resets its leads' stage).
    before: str | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    status_errors: int
    bad: int
    sample: str
    # CPU seconds the target's server process used during the run (utime + stime).
    server_cpu_s: float = 0.0
    # CPU seconds of PostgreSQL's processes (embedded server only) during the run.
    postgres_cpu_s: float = 0.0
    # Cores' worth of CPU used by processes other than the benchmark's during the run.
    other_cores: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1e3 * self.server_cpu_s / self.requests if self.requests else 0.0

    @property
    def postgres_ms_per_request(self) -> float:
        return 1e3 * self.postgres_cpu_s / self.requests if self.requests else 0.0


@dataclass(slots=True)
class Series:
    """A case's measurements over the rounds."""

    case: Case
    rounds: list[Measurement] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(m.rps for m in self.rounds)

    @property
    def p50_ms(self) -> float:
        return statistics.median(m.p50_ms for m in self.rounds)

    @property
    def p99_ms(self) -> float:
        return statistics.median(m.p99_ms for m in self.rounds)

    @property
    def cpu_ms_per_request(self) -> float:
        return statistics.median(m.cpu_ms_per_request for m in self.rounds)

    @property
    def postgres_ms_per_request(self) -> float:
        return statistics.median(m.postgres_ms_per_request for m in self.rounds)

    @property
    def other_cores(self) -> float:
        return statistics.median(m.other_cores for m in self.rounds)

    @property
    def worst_p99_ms(self) -> float:
        return max(m.p99_ms for m in self.rounds)

    @property
    def bad(self) -> int:
        return sum(m.bad + m.socket_errors for m in self.rounds)

    @property
    def requests(self) -> int:
        return sum(m.requests for m in self.rounds)


class Wrk:
    """Runs wrk with one thread (the machine has 2 cores, shared with the servers)."""

    def __init__(self, binary: str, log_dir: Path) -> None:
        self.binary = binary
        self.log_dir = log_dir
        self._runs = 0

    async def run(self, case: Case, seconds: int, label: str) -> Measurement:
        self._runs += 1
        args = list(case.args)
        if case.unique_suffix:
            args.append(f"{label}-{self._runs}-{os.getpid()}")
        argv = [
            self.binary,
            "-t1",
            f"-c{case.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(WRK_DIR / case.script),
            case.url,
            "--",
            *args,
        ]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = await process.communicate()
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        text = out.decode(errors="replace")
        name = f"{self._runs:03d}-{label}-{case.workload}-{case.target}-c{case.connections}"
        (self.log_dir / f"{_slug(name)}.txt").write_text(" ".join(argv[:-1]) + "\n\n" + text)
        for line in text.splitlines():
            if line.startswith("BENCH_JSON "):
                return _measurement(json.loads(line.removeprefix("BENCH_JSON ")))
        raise RuntimeError(f"wrk gave no result for {name}:\n{text}")


def _measurement(raw: dict[str, Any]) -> Measurement:
    return Measurement(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1e3,
        p90_ms=raw["p90_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        max_ms=raw["max_us"] / 1e3,
        socket_errors=raw["socket_errors"],
        status_errors=raw["status_errors"],
        bad=raw["bad"],
        sample=raw["sample"],
    )


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
