"""wrk runs: what a run drives (Case), what it measured (Measurement, Series), and the Runner
that measures cases one at a time or in interleaved rounds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from stack import ROOT, CpuMeter, Server, say

WRK_DIR: Final = ROOT / "bench" / "wrk"
# Before each run, wait up to `quiet_wait` seconds for other processes to use under
# QUIET_LOAD cores over a QUIET_WINDOW (this machine may be shared with tests or profilers).
QUIET_WINDOW: Final = 0.5
QUIET_LOAD: Final = 0.25


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
    # Cores' worth of CPU the whole machine used during the run (the benchmark's included).
    busy_cores: float = 0.0

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
    def busy_cores(self) -> float:
        return statistics.median(m.busy_cores for m in self.rounds)

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


def describe(case: Case, m: Measurement) -> str:
    """One run as a progress line."""
    return (
        f"  {case.workload:<15} {case.target:<15} c{case.connections:<3} "
        f"{m.rps:8.1f} req/s  p50 {m.p50_ms:7.2f} ms  p99 {m.p99_ms:7.2f} ms  "
        f"cpu {m.cpu_ms_per_request:5.2f} + pg {m.postgres_ms_per_request:5.2f} ms/req"
        + (f"  other load {m.other_cores:.2f} cores" if m.other_cores >= 0.1 else "")
        + (f"  BAD {m.bad}" if m.bad else "")
    )


@dataclass(slots=True)
class Runner:
    """Runs cases with wrk against `servers` (by case target), after waiting a little for
    other work on the machine to calm down, and records the CPU the target's server (its
    workers included) and PostgreSQL used and what other processes took meanwhile. Trouble
    (bad responses, runs started on a busy machine) is noted in `problems` and `busy_starts`.
    """

    wrk: Wrk
    meter: CpuMeter
    servers: Mapping[str, Server]
    quiet_wait: int
    before: Callable[[Case], Awaitable[None]] | None = None
    # Entered around each wrk run alone (not the wait before it): e.g. a sampler of
    # PostgreSQL's wait events; given the case and the run's label.
    during: Callable[[Case, str], contextlib.AbstractAsyncContextManager[None]] | None = None
    problems: list[str] = field(default_factory=list)
    busy_starts: list[str] = field(default_factory=list)

    async def settle(self, case: Case, label: str) -> None:
        deadline = time.monotonic() + self.quiet_wait
        while True:
            before = self.meter.snapshot()
            await asyncio.sleep(QUIET_WINDOW)
            load = self.meter.snapshot().other_since(before) / QUIET_WINDOW
            if load < QUIET_LOAD:
                return
            if time.monotonic() >= deadline:
                if self.quiet_wait:
                    self.busy_starts.append(f"{label} {case.workload} / {case.target}: {load:.2f}")
                return

    async def one(self, case: Case, seconds: int, label: str) -> Measurement:
        if self.before is not None:
            await self.before(case)
        await self.settle(case, label)
        server = self.servers[case.target]
        cpu = server.cpu_seconds()
        before = self.meter.snapshot()
        async with self.during(case, label) if self.during else contextlib.nullcontext():
            result = await self.wrk.run(case, seconds, label)
        used = server.cpu_seconds() - cpu
        after = self.meter.snapshot()
        if result.bad or result.socket_errors:
            self.problems.append(
                f"{label} {case.workload} / {case.target} c{case.connections}: {result.bad} bad "
                f"responses, {result.socket_errors} socket errors of {result.requests}; first: "
                f"`{result.sample[:200]}`"
            )
        return replace(
            result,
            server_cpu_s=used,
            postgres_cpu_s=after.postgres - before.postgres,
            other_cores=after.other_since(before) / result.seconds,
            busy_cores=(after.busy - before.busy) / result.seconds,
        )

    async def interleaved(
        self,
        name: str,
        groups: list[list[Case]],
        series: dict[Case, Series],
        *,
        warmup: int,
        rounds: int,
        seconds: int,
    ) -> None:
        """A warm-up run of every case, then `rounds` rounds that run every case once,
        rotating the order of the cases within each group from one round to the next."""
        total = sum(len(g) for g in groups)
        say(f"{name}: warm-up, {total} runs of {warmup:g}s")
        for group in groups:
            for case in group:
                await self.one(case, warmup, "warmup")
        for r in range(rounds):
            say(f"{name}: round {r + 1}/{rounds}, {total} runs of {seconds:g}s")
            for group in groups:
                shift = r % len(group)
                for case in group[shift:] + group[:shift]:
                    m = await self.one(case, seconds, f"round{r + 1}")
                    series.setdefault(case, Series(case)).rounds.append(m)
                    say(describe(case, m))
