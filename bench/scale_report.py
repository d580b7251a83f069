"""bench/SCALE.md: what bench/scale.py measured, how, on what, and what limited each figure.

Each table keeps the rows of earlier runs (read back from the previous file) and gains this
run's; the method, the machine and the "what limits" section describe the latest run, and are
written from its measurements.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from loadgen import Series
from openloop import Summary
from report import fmt_ratio, ratio, relative
from subscribers import Delays, percentile

from leadgate.events.nats_bus import POLL_INTERVAL

NOTIFY: Final = "LISTEN/NOTIFY"
NATS: Final = "NATS"
# A figure is "bound by the cores" when the machine was this busy during it.
SATURATED: Final = 0.9

# What a PostgreSQL backend in a write transaction was doing, by wait event (or state).
WAIT_MEANING: Final = {
    "Lock:advisory (event order)": "the organization's event lock (`pg_advisory_xact_lock` in "
    "the event insert, held until commit: one organization's writes commit one at a time)",
    "Lock:advisory (duplicate check)": "the duplicate check's lock on one organization's email "
    "or phone (creates of one value queue)",
    "Lock:advisory": "another advisory lock",
    "Client:ClientRead": "waiting for the gateway in the middle of a statement",
    "Lock:object": "NOTIFY's commit lock (database-wide: one NOTIFYing transaction commits "
    "at a time)",
    "idle in transaction": "waiting for the gateway's next statement (gateway CPU, its event "
    "loop, or a pool connection handed back late)",
    "on CPU": "executing a statement",
    "IO:WALSync": "the commit's WAL flush (fsync)",
    "IO:WALWrite": "writing WAL",
    "LWLock:WALWrite": "another backend's WAL flush, which its commit joins",
    "LWLock:LockManager": "PostgreSQL's lock table, busy with the lock waits",
    "Lock:transactionid": "a row lock held by another transaction",
}


def wait_meaning(state: str) -> str:
    if state.startswith("LWLock:Notify"):
        return "the NOTIFY queue"
    if state.endswith("(a row of lead_counts)"):
        return (
            "the organization's maintained lead total (`lead_counts`, sql/migrations/0002): its "
            "row is updated by the lead insert's trigger and stays locked until commit, so one "
            "organization's creates commit one at a time"
        )
    if "(a row of " in state:
        return "a row another transaction updated and has not committed yet"
    return WAIT_MEANING.get(state, "")


@dataclass(slots=True)
class Waits:
    """PostgreSQL's backends of the run's database (other than the sampler), sampled during a
    case's measured runs: how many were in each state, summed over the samples."""

    samples: int = 0
    states: Counter[str] = field(default_factory=Counter)

    def mean(self, state: str) -> float:
        return self.states[state] / self.samples if self.samples else 0.0

    @property
    def busy(self) -> float:
        """Backends in a transaction or a statement, on average."""
        return sum(self.states.values()) / self.samples if self.samples else 0.0

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        return [(state, self.mean(state)) for state, _ in self.states.most_common(n)]


@dataclass(frozen=True, slots=True)
class FanOut:
    subscribers: int
    gateways: int
    clients: int
    moves: int
    delays: Delays
    connect_seconds: float
    # Per measured move: CPU of both gateways, of each, of PostgreSQL, and of this process
    # with its client workers.
    gateways_cpu_ms: float
    each_gateway_cpu_ms: list[float]
    postgres_cpu_ms: float
    clients_cpu_ms: float
    rss_idle_kib: list[int]
    rss_with_kib: list[int]
    other_cores: float


@dataclass(frozen=True, slots=True)
class EventTimes:
    """When one event of the burst was written, seen committed, relayed, received (epoch s)."""

    # created_at: its transaction's now(), the transaction's start.
    created: float
    # The start of the first poll of the table that saw it committed.
    visible: float | None
    # Its message's arrival at a core NATS subscriber.
    on_nats: float | None
    # Its arrival at a GraphQL subscriber's client process.
    received: float | None


@dataclass(frozen=True, slots=True)
class RelayRead:
    """The relay's read of the table (nats_bus.COMMITTED_AFTER) as PostgreSQL ran it once,
    caught up, before the burst: its scans, the pages it touched and the size in pages of
    what it scanned (table or index), its time."""

    scans: list[str]
    pages_touched: int
    pages_scanned: int
    milliseconds: float


@dataclass(frozen=True, slots=True)
class Burst:
    writer: Summary
    events: list[EventTimes]
    commit_poll_ms: float
    relay_read: RelayRead
    events_in_table: int
    # PostgreSQL's backends while the writer ran.
    waits: Waits
    seconds: float
    gateway_cores: float
    postgres_cores: float
    busy_cores: float
    other_cores: float


@dataclass(slots=True)
class ScaleRun:
    started: dt.datetime
    options: dict[str, Any]
    log_dir: Path
    machine: dict[str, str]
    versions: dict[str, str] = field(default_factory=dict)
    source: str = ""
    database: str = ""
    leads: int = 0
    write_pool: int = 0
    list_pool: int = 0
    idle_other_cores: float = 0.0
    loadavg_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    loadavg_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    finished: dt.datetime | None = None
    lists: list[Series] = field(default_factory=list)
    writes: list[Series] = field(default_factory=list)
    # By (workload, event bus, connections).
    waits: dict[tuple[str, str, int], Waits] = field(default_factory=dict)
    fan_out: FanOut | None = None
    burst: Burst | None = None
    problems: list[str] = field(default_factory=list)
    busy_starts: list[str] = field(default_factory=list)


LIST_HEADER: Final = (
    "| date | gateway | conns | req/s | rounds (req/s) | p50 ms | p99 ms | gateway CPU ms/req "
    "| PostgreSQL CPU ms/req | machine busy (cores) | other load (cores) | vs 1 worker | bad |"
)
WRITE_HEADER: Final = (
    "| date | organizations | event bus | conns | tx/s | rounds (tx/s) | p50 ms | p99 ms "
    "| gateway CPU ms/tx | PostgreSQL CPU ms/tx | machine busy (cores) | other load (cores) "
    "| PostgreSQL backends in a transaction: mean, top states | vs LISTEN/NOTIFY | bad |"
)
FAN_OUT_HEADER: Final = (
    "| date | subscribers | gateway processes | moves | received (min per move) | p50 ms "
    "| p99 ms | max ms | p50 / p99 ms from request | gateways' CPU ms/move (each) "
    "| PostgreSQL CPU ms/move | clients' CPU ms/move | RSS MB per gateway: idle → with "
    "subscribers | KB/subscriber | connect s | other load (cores) |"
)
BURST_HEADER: Final = (
    "| date | offered writes/s × s | due / good / bad | achieved writes/s "
    "| write p50 / p99 ms (from due) | events | commit→NATS p50 / p99 / max ms "
    "| commit→subscriber p50 / p99 / max ms | created_at→NATS p50 / p99 / max ms "
    "| on NATS / at subscriber | machine busy (cores): gateways, PostgreSQL | other load (cores) "
    "| writer late p99 ms |"
)


def _separator(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def _kept_rows(previous: str, header: str) -> list[str]:
    """The rows under `header` in the previous report (none if its columns changed)."""
    lines = previous.splitlines()
    if header not in lines:
        return []
    rows = []
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cores(series: Series, what: str) -> float:
    """Median over the rounds of the cores' worth of CPU used by the server or PostgreSQL."""
    values = [
        (m.server_cpu_s if what == "server" else m.postgres_cpu_s) / m.seconds
        for m in series.rounds
        if m.seconds
    ]
    return statistics.median(values) if values else 0.0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _p(values: list[float], q: float) -> float:
    return percentile(values, q) if values else 0.0


def _three(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{_median(values):.1f} / {_p(values, 99):.1f} / {max(values):.1f}"


def _find(
    series: list[Series], target: str, connections: int | None = None, workload: str | None = None
) -> Series | None:
    for s in series:
        k = s.case
        if (
            k.target == target
            and connections in (None, k.connections)
            and workload in (None, k.workload)
        ):
            return s
    return None


def _cells(s: Series) -> str:
    rounds = " / ".join(f"{m.rps:.0f}" for m in s.rounds)
    return (
        f"{s.case.connections} | **{s.rps:,.0f}** | {rounds} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | "
        f"{s.cpu_ms_per_request:.2f} | {s.postgres_ms_per_request:.2f} | {s.busy_cores:.2f} | "
        f"{s.other_cores:.2f}"
    )


def _list_rows(run: ScaleRun, date: str) -> list[str]:
    one = _find(run.lists, "workers 1")
    return [
        f"| {date} | {s.case.target} | {_cells(s)} | "
        f"{'1.00×' if s is one else fmt_ratio(ratio(s, one))} | {s.bad} |"
        for s in run.lists
    ]


def _waits_text(waits: Waits | None) -> str:
    if waits is None or not waits.samples:
        return "n/a"
    return f"{waits.busy:.1f}: " + ", ".join(f"{state} {mean:.1f}" for state, mean in waits.top())


def _organizations(workload: str) -> str:
    return workload.removeprefix("createLead, ").split()[0]


def _write_rows(run: ScaleRun, date: str) -> list[str]:
    rows = []
    for s in run.writes:
        k = s.case
        base = _find(run.writes, NOTIFY, k.connections, k.workload)
        versus = "1.00×" if s is base else fmt_ratio(ratio(s, base))
        waits = run.waits.get((k.workload, k.target, k.connections))
        rows.append(
            f"| {date} | {_organizations(k.workload)} | {k.target} | {_cells(s)} | "
            f"{_waits_text(waits)} | {versus} | {s.bad} |"
        )
    return rows


def _fan_out_row(f: FanOut, date: str) -> str:
    d = f.delays
    each = " + ".join(f"{c:.0f}" for c in f.each_gateway_cpu_ms)
    rss = ", ".join(
        f"{a / 1024:.0f} → {b / 1024:.0f}"
        for a, b in zip(f.rss_idle_kib, f.rss_with_kib, strict=True)
    )
    per_subscriber = (sum(f.rss_with_kib) - sum(f.rss_idle_kib)) / f.subscribers
    return (
        f"| {date} | {f.subscribers:,} | {f.gateways} | {f.moves} | "
        f"{d.received_min:,}/{f.subscribers:,} | {_median(d.changed_ms):.1f} | "
        f"{_p(d.changed_ms, 99):.1f} | {max(d.changed_ms, default=0):.1f} | "
        f"{_median(d.from_request_ms):.1f} / {_p(d.from_request_ms, 99):.1f} | "
        f"{f.gateways_cpu_ms:.0f} ({each}) | {f.postgres_cpu_ms:.0f} | {f.clients_cpu_ms:.0f} | "
        f"{rss} | {per_subscriber:.1f} | {f.connect_seconds:.1f} | {f.other_cores:.2f} |"
    )


def _lags(b: Burst, start: str, end: str) -> list[float]:
    """Milliseconds from one of an event's times to a later one, where both are known."""
    lags = []
    for e in b.events:
        a, z = getattr(e, start), getattr(e, end)
        if a is not None and z is not None:
            lags.append((z - a) * 1000)
    return lags


def _burst_row(b: Burst, date: str) -> str:
    w = b.writer
    on_nats = sum(e.on_nats is not None for e in b.events)
    received = sum(e.received is not None for e in b.events)
    return (
        f"| {date} | {w.rate:,.0f} × {w.seconds:g} | {w.due:,} / {w.good:,} / {w.bad:,} | "
        f"**{w.achieved_rate:,.0f}** | {w.p50_ms:.1f} / {w.p99_ms:.1f} | {len(b.events):,} | "
        f"{_three(_lags(b, 'visible', 'on_nats'))} | {_three(_lags(b, 'visible', 'received'))} | "
        f"{_three(_lags(b, 'created', 'on_nats'))} | {on_nats:,} / {received:,} | "
        f"{b.busy_cores:.2f}: {b.gateway_cores:.2f}, {b.postgres_cores:.2f} | "
        f"{b.other_cores:.2f} | {w.late_p99_ms:.1f} |"
    )


def render(run: ScaleRun, previous: str) -> str:
    date = f"{run.started:%Y-%m-%d %H:%M} UTC"
    o = run.options
    cores = os.cpu_count() or 1
    lines: list[str] = []
    add = lines.append
    duration = ((run.finished or run.started) - run.started).total_seconds() / 60
    add("# Scale-out: worker processes, NATS JetStream, LISTEN/NOTIFY")
    add("")
    add(
        "Written by `make bench-scale` (`bench/scale.py`); do not edit by hand. Each table keeps "
        "a row per configuration of every run; the text describes the latest run"
        + (
            " (**a `--quick` smoke run: small data, short runs; not for conclusions**)"
            if o["quick"]
            else ""
        )
        + ". Every process (gateways, PostgreSQL, nats-server, wrk, the writer and the "
        "subscribers' client processes) shares one machine: absolute figures drift between runs, "
        "compare configurations measured side by side."
    )
    add("")
    add(f"- **Date**: {date} (the run took {duration:.1f} min)")
    add("- **Machine**: " + ", ".join(f"{k} {v}" for k, v in run.machine.items()))
    add(
        f"- **Load**: with the servers idle, other processes used {run.idle_other_cores:.2f} "
        "cores; load average "
        + " / ".join(f"{x:.2f}" for x in run.loadavg_start)
        + " at the start, "
        + " / ".join(f"{x:.2f}" for x in run.loadavg_end)
        + " at the end (1 / 5 / 15 min). The tables give, per run, the cores the whole machine "
        "used (*machine busy*) and those used by anything the benchmark did not start "
        "(*other load*)."
    )
    add("- **Versions**: " + ", ".join(f"{k} {v}" for k, v in run.versions.items()))
    add(f"- **Gateway source**: {run.source}")
    add(
        f"- **Data**: {run.database}; one organization with {run.leads:,} leads from "
        "`leadgate demo-data --seed 42` (bench/fixture.py, as `make bench`), then `VACUUM "
        f"ANALYZE`; createLead writes into a second organization, or into it and "
        f"{o['orgs'] - 1} more; the fan-out and the burst move that first organization's leads."
    )
    add("")
    add("## Method")
    add("")
    add(
        f"1. **List**: the 20 newest leads with every field, stage, advisor and the total "
        f"(`make bench`'s list workload), `leadgate serve --workers 1` and `--workers 2` (pool "
        f"{run.list_pool} per worker, LISTEN/NOTIFY, dispatcher off) up side by side; `wrk -t1 "
        f"-c16` for a {o['warmup']} s warm-up each, then {o['rounds']} rounds of {o['seconds']} s "
        "each, interleaved (each round runs both, the order rotating). req/s, p50, p99 are "
        "medians of the rounds; *vs 1 worker* the median (min–max) of the per-round ratios."
    )
    add(
        f"2. **createLead** with a fresh idempotency key and email per request (one email for "
        "all would queue every create on the duplicate check's lock), into one organization "
        f"and spread over {o['orgs']} (their keys in turn), through `serve --workers 2` with "
        f"pool {run.write_pool} per worker ({2 * run.write_pool} connections: 64 transactions can "
        "run at once), with the default LISTEN/NOTIFY and with `LEADGATE_EVENT_BUS` at the "
        "run's own nats-server (`-js`, free port, temp store), at 16 and 64 wrk connections. "
        "Both gateways at once would need more connections than the embedded server's 100, so "
        "each round starts one, waits for its relay to catch up (NATS), warms it up for "
        f"{o['warmup']} s and measures the four cases, then stops it and does the same with the "
        f"other; {o['rounds']} round(s) of {o['seconds']} s, the order of the buses and of the "
        "cases rotating. During every measured run PostgreSQL's `pg_stat_activity` is sampled "
        "every 50 ms: the mean number of the database's backends in a transaction, and of those "
        "in each state (a wait event, *on CPU*, or *idle in transaction*; see the legend "
        "below the table)."
    )
    add(
        f"3. **Fan-out**: {o['subscribers']:,} graphql-transport-ws `leadStageChanged` "
        f"subscriptions over two `serve` processes on two ports (`--workers 1` each, NATS), half "
        f"on each, opened by {o['clients']} client worker processes (bench/subscribers.py's, each "
        f"connected to one of the two gateways in turn); one priming move every subscriber must "
        f"receive, then {o['moves']} REST moves, each once the previous reached everybody. Delay "
        "is from the event's `changedAt` to the moment a client process read the message."
    )
    add(
        f"4. **Relay lag**: moveLead through GraphQL at a fixed {o['rate']:,.0f} per second for "
        f"{o['burst']} s into one organization (bench/openloop.py: open loop, a request is sent "
        "when due whatever is in flight, on up to 64 connections), through the NATS `--workers "
        "2` gateway of section 2. Per event: *commit* is the start of the first poll of the "
        f"table (every {run.burst.commit_poll_ms if run.burst else 0:g} ms, by bench/scale.py) "
        "that saw it committed; *on NATS* its message's arrival at a core NATS subscriber in "
        "bench/scale.py; *at subscriber* its arrival at one GraphQL subscriber's client process "
        "(bench/subscribers.py's). `created_at` (= `changedAt`) is the writing transaction's "
        "start (`now()`), so lags from it also hold the rest of that transaction, lock waits "
        "included."
    )
    add("")

    sections = (
        (
            "## 1. List req/s: `serve --workers 1` vs `--workers 2`",
            LIST_HEADER,
            _list_rows(run, date),
        ),
        (
            "## 2. createLead tx/s: LISTEN/NOTIFY vs the NATS relay",
            WRITE_HEADER,
            _write_rows(run, date),
        ),
        (
            "## 3. Subscribers over two gateway processes with NATS: commit to receipt",
            FAN_OUT_HEADER,
            [_fan_out_row(run.fan_out, date)] if run.fan_out else [],
        ),
        (
            "## 4. Relay lag under a write burst",
            BURST_HEADER,
            [_burst_row(run.burst, date)] if run.burst else [],
        ),
    )
    for title, header, rows in sections:
        add(title)
        add("")
        add(header)
        add(_separator(header))
        lines.extend(_kept_rows(previous, header))
        lines.extend(rows)
        add("")
        if header == WRITE_HEADER:
            seen = sorted({state for w in run.waits.values() for state in w.states})
            legend = [f"*{state}*: {wait_meaning(state)}" for state in seen if wait_meaning(state)]
            if legend:
                add("Backend states: " + "; ".join(legend) + ".")
                add("")

    add(f"## What limits each figure ({date} run)")
    add("")
    for bullet in limits(run, cores):
        add(f"- {bullet}")
    add("")
    notes = [f"⚠ {p}" for p in run.problems]
    if run.busy_starts:
        notes.append(
            f"{len(run.busy_starts)} run(s) started while other processes still used more than "
            "a quarter of a core after the wait (`--quiet-wait`): "
            + "; ".join(run.busy_starts[:8])
            + ("; …" if len(run.busy_starts) > 8 else "")
            + " (cores)."
        )
    if notes:
        add("## Notes")
        add("")
        lines.extend(f"- {n}" for n in notes)
        add("")
    add(f"Raw wrk output and server logs of this run: `{relative(run.log_dir)}/` (not committed).")
    add("")
    return "\n".join(lines)


# --- what limits each figure, from the latest run's measurements


def _machine_text(busy: float, cores: int, other: float) -> str:
    return f"the machine was {busy:.2f} of {cores} cores busy (other processes {other:.2f})"


def _list_limits(run: ScaleRun, cores: int) -> list[str]:
    one, two = _find(run.lists, "workers 1"), _find(run.lists, "workers 2")
    if one is None or two is None:
        return []
    g1, g2 = _cores(one, "server"), _cores(two, "server")
    first = (
        f"**List, 1 worker ({one.rps:,.0f} req/s)**: the gateway used {g1:.2f} cores and "
        f"PostgreSQL {_cores(one, 'postgres'):.2f}; "
        + _machine_text(one.busy_cores, cores, one.other_cores)
        + ". "
    )
    if g1 >= 0.85:
        first += "One worker is one Python process: it was bound by its one core."
    elif one.busy_cores >= SATURATED * cores:
        first += "The machine's cores were the limit before the worker's own core was."
    else:
        first += "Neither its core nor the machine was saturated: 16 connections' round trips were."
    second = (
        f"**List, 2 workers ({two.rps:,.0f} req/s, {fmt_ratio(ratio(two, one))} of 1 worker)**: "
        f"the two used {g2:.2f} cores together, PostgreSQL {_cores(two, 'postgres'):.2f}; "
        + _machine_text(two.busy_cores, cores, two.other_cores)
        + ". "
    )
    if two.busy_cores >= SATURATED * cores:
        second += (
            f"The {cores} cores were the limit: workers, PostgreSQL and wrk share them, so the "
            "second worker adds only what the first one and PostgreSQL left idle. With cores to "
            "spare the ratio would grow towards the number of workers until PostgreSQL saturates."
        )
    else:
        second += "The cores were not saturated: 16 connections' round trips limited it."
    return [first, second]


def _write_limit(s: Series, waits: Waits | None, cores: int) -> str:
    k = s.case
    saturated = s.busy_cores >= SATURATED * cores
    text = (
        f"**{k.workload}, {k.target}, {k.connections} connections ({s.rps:,.0f} tx/s, p99 "
        f"{s.p99_ms:.0f} ms)**: gateway {_cores(s, 'server'):.2f} + PostgreSQL "
        f"{_cores(s, 'postgres'):.2f} cores; "
        + _machine_text(s.busy_cores, cores, s.other_cores)
        + ". "
    )
    if waits is None or not waits.samples:
        return text + ("Bound by the cores." if saturated else "")
    states = waits.top(8)
    locked = [(state, mean) for state, mean in states if state.startswith("Lock:")]
    queued = sum(mean for _, mean in locked)
    idle = waits.mean("idle in transaction")
    text += (
        f"Of {waits.busy:.1f} backends in a transaction on average, "
        + ", ".join(f"{mean:.1f} {state}" for state, mean in states[:4])
        + ". "
    )
    if locked and queued >= 0.5 * waits.busy:
        per_org = s.rps / int(_organizations(k.workload))
        text += (
            f"Serialised on {locked[0][0]}: {queued:.1f} backends wait for a lock, so more "
            "connections only lengthen the queue; each organization commits one write at a "
            f"time, ≈ {1000 / per_org:.1f} ms apiece here."
            if per_org
            else ""
        )
        if idle >= 0.5 * max(1e-9, waits.busy - queued):
            text += (
                " The backends not waiting for it were mostly idle in transaction, waiting for "
                "the gateway's next statement: the lock is held across gateway round trips, so "
                "the workers' event loops (and the cores they share) set its pace."
            )
    elif saturated:
        text += "Bound by the cores" + (
            ": most transactions were waiting for the gateway (idle in transaction), whose "
            "workers need the CPU PostgreSQL also uses."
            if idle >= 0.5 * waits.busy
            else "."
        )
    else:
        text += "Neither a lock nor the cores: the gateway's event loops."
    return text


def _write_limits(run: ScaleRun, cores: int) -> list[str]:
    out = [
        _write_limit(s, run.waits.get((s.case.workload, s.case.target, s.case.connections)), cores)
        for s in run.writes
    ]
    pairs = sorted({(s.case.workload, s.case.connections) for s in run.writes})
    for workload, conns in pairs:
        base = _find(run.writes, NOTIFY, conns, workload)
        nats = _find(run.writes, NATS, conns, workload)
        if base is None or nats is None:
            continue
        notify = run.waits.get((workload, NOTIFY, conns), Waits())
        commit_lock = notify.mean("Lock:object")
        r = ratio(nats, base)
        text = (
            f"**NATS vs LISTEN/NOTIFY, {workload.removeprefix('createLead, ')}, {conns} "
            f"connections**: {fmt_ratio(r)} the tx/s; CPU per transaction with NATS vs NOTIFY: "
            f"gateway {nats.cpu_ms_per_request:.2f} vs {base.cpu_ms_per_request:.2f} ms, "
            f"PostgreSQL {nats.postgres_ms_per_request:.2f} vs "
            f"{base.postgres_ms_per_request:.2f} ms. With NOTIFY, {commit_lock:.1f} backends "
            "waited on its commit lock (Lock:object) on average"
        )
        if commit_lock < 0.5:
            text += ": it was not what limited this case."
        elif r is not None and r[0] < 1:
            text += ", a wait NATS removes, but the limits above came first."
        else:
            text += ", a wait NATS removes."
        out.append(text)
    return out


def _fan_out_limits(run: ScaleRun, cores: int) -> list[str]:
    f = run.fan_out
    if f is None:
        return []
    d = f.delays
    per = f.gateways_cpu_ms / f.subscribers if f.subscribers else 0.0
    bus = ""
    if run.burst is not None and (relay := _lags(run.burst, "visible", "on_nats")):
        bus = f" (commit to NATS took {_median(relay):.0f} ms at p50 in the burst, section 4)"
    return [
        f"**Fan-out, {f.subscribers:,} subscribers over {f.gateways} processes (p50 "
        f"{_median(d.changed_ms):.0f} ms, p99 {_p(d.changed_ms, 99):.0f} ms)**: a move cost the "
        f"gateways {f.gateways_cpu_ms:.0f} ms of CPU ({per:.3f} ms per subscriber; "
        + " and ".join(f"{c:.0f}" for c in f.each_gateway_cpu_ms)
        + f" ms in each), PostgreSQL {f.postgres_cpu_ms:.0f} ms, the client processes (with "
        f"this one) {f.clients_cpu_ms:.0f} ms, all on {cores} shared cores. A gateway sends a "
        "move to its subscribers one after another, so the last one's delay is that gateway's "
        "CPU per move, stretched by whatever else the cores run meanwhile (the other gateway, "
        f"the clients reading): CPU per subscriber limits it, not the bus{bus}."
    ]


def _burst_limits(run: ScaleRun, cores: int) -> list[str]:
    b = run.burst
    if b is None:
        return []
    w = b.writer
    reached = w.achieved_rate >= 0.95 * w.rate
    text = (
        f"**Burst, {w.rate:,.0f} writes/s offered into one organization**: {w.achieved_rate:,.0f}"
        "/s answered"
        + ("" if reached else " (the offered rate was not reached)")
        + f", write p99 {w.p99_ms:.0f} ms from due; gateways {b.gateway_cores:.2f}, PostgreSQL "
        f"{b.postgres_cores:.2f}, the writer {w.client_cpu_s / b.seconds:.2f} cores; "
        + _machine_text(b.busy_cores, cores, b.other_cores)
        + f". The writer launched its requests up to {w.late_p99_ms:.1f} ms late (p99)"
        + (": it kept to its schedule. " if w.late_p99_ms < 50 else ": it fell behind too. ")
    )
    if b.waits.samples:
        text += (
            f"PostgreSQL had {b.waits.busy:.1f} backends in a transaction on average: "
            + ", ".join(f"{mean:.1f} {state}" for state, mean in b.waits.top(4))
            + ". "
        )
    if not reached:
        locked = [(st, mean) for st, mean in b.waits.top(8) if st.startswith("Lock:")]
        if locked and sum(mean for _, mean in locked) >= 0.5 * b.waits.busy:
            text += (
                f"The moves of one organization queued on {locked[0][0]}, one at a time; "
                "what the gateway did not answer waited on the 64 connections and in the writer."
            )
        elif b.busy_cores >= SATURATED * cores:
            text += "The cores were the limit of the write rate."
        else:
            text += "Neither a lock nor the cores: the gateway's event loops."
    relayed = [
        (e.visible, (e.on_nats - e.visible) * 1000)
        for e in b.events
        if e.visible is not None and e.on_nats is not None
    ]
    relay = [lag for _, lag in relayed]
    opening = [lag for t, lag in relayed if t < relayed[0][0] + 1] if relayed else []
    closing = [lag for t, lag in relayed if t >= relayed[-1][0] - 1] if relayed else []
    grew = _median(closing) > 2 * _median(opening) + 50
    subscriber = _lags(b, "visible", "received")
    read = b.relay_read
    lag = (
        f"**Relay lag (commit→NATS p50 {_median(relay):.0f} ms, p99 {_p(relay, 99):.0f} ms, "
        f"max {max(relay, default=0):.0f} ms)**: the relay reads the table every "
        f"{POLL_INTERVAL * 1000:.0f} ms once it has caught up (at once again while it has a "
        "backlog) and publishes what it read, awaiting JetStream's acknowledgements. Before the "
        f"burst, with {b.events_in_table:,} events in `lead_events`, one such read "
        f"(`COMMITTED_AFTER` in events/nats_bus.py) took {read.milliseconds:.1f} ms and "
        f"touched {read.pages_touched:,} pages; what it scans ("
        + (", ".join(read.scans) or "nothing")
        + f") has {read.pages_scanned:,}"
        + (
            ": all of it at every poll, since no index leads with `id` (the table's key is "
            "`(organization_id, id)`), so the relay's cost grows with the table."
            if read.pages_scanned and read.pages_touched >= 0.5 * read.pages_scanned
            else "."
        )
        + f" Commit times are known to {b.commit_poll_ms:g} ms (the benchmark's poll). p50 in "
        f"the burst's first second {_median(opening):.0f} ms, in its last "
        f"{_median(closing):.0f} ms: "
        + ("it grew, the relay fell behind the writes." if grew else "the relay kept up.")
        + f" A GraphQL subscriber got events {_median(subscriber):.0f} ms after commit at p50 "
        f"(p99 {_p(subscriber, 99):.0f} ms): the gateway's consumer, its read of the events "
        "from the table and the fan-out add "
        f"{max(0.0, _median(subscriber) - _median(relay)):.0f} ms. From `created_at`, the "
        f"transaction's start, commit came {_median(_lags(b, 'created', 'visible')):.0f} ms "
        "later at p50: the waits for the organization's locks and the rest of the transaction."
    )
    return [text, lag]


def limits(run: ScaleRun, cores: int) -> list[str]:
    return (
        _list_limits(run, cores)
        + _write_limits(run, cores)
        + _fan_out_limits(run, cores)
        + _burst_limits(run, cores)
    )
