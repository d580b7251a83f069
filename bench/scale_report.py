"""bench/SCALE.md: what bench/scale.py measured, how, on what, and what limited each figure.

Each table keeps the rows of earlier runs (read back from the previous file) and gains this
run's; the method, the machine and the "what limits" section (bench/scale_limits.py) describe
the latest run, and are written from its measurements.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from loadgen import Series
from openloop import Summary
from pgwatch import RelayRead, Waits
from report import fmt_ratio, ratio, relative
from subscribers import Delays, percentile

NOTIFY: Final = "LISTEN/NOTIFY"
NATS: Final = "NATS"

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


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def quantile(values: list[float], q: float) -> float:
    return percentile(values, q) if values else 0.0


def _three(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{median(values):.1f} / {quantile(values, 99):.1f} / {max(values):.1f}"


def find(
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
    one = find(run.lists, "workers 1")
    return [
        f"| {date} | {s.case.target} | {_cells(s)} | "
        f"{'1.00×' if s is one else fmt_ratio(ratio(s, one))} | {s.bad} |"
        for s in run.lists
    ]


def _waits_text(waits: Waits | None) -> str:
    if waits is None or not waits.samples:
        return "n/a"
    return f"{waits.busy:.1f}: " + ", ".join(f"{state} {mean:.1f}" for state, mean in waits.top())


def organizations(workload: str) -> str:
    return workload.removeprefix("createLead, ").split()[0]


def _write_rows(run: ScaleRun, date: str) -> list[str]:
    rows = []
    for s in run.writes:
        k = s.case
        base = find(run.writes, NOTIFY, k.connections, k.workload)
        versus = "1.00×" if s is base else fmt_ratio(ratio(s, base))
        waits = run.waits.get((k.workload, k.target, k.connections))
        rows.append(
            f"| {date} | {organizations(k.workload)} | {k.target} | {_cells(s)} | "
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
        f"{d.received_min:,}/{f.subscribers:,} | {median(d.changed_ms):.1f} | "
        f"{quantile(d.changed_ms, 99):.1f} | {max(d.changed_ms, default=0):.1f} | "
        f"{median(d.from_request_ms):.1f} / {quantile(d.from_request_ms, 99):.1f} | "
        f"{f.gateways_cpu_ms:.0f} ({each}) | {f.postgres_cpu_ms:.0f} | {f.clients_cpu_ms:.0f} | "
        f"{rss} | {per_subscriber:.1f} | {f.connect_seconds:.1f} | {f.other_cores:.2f} |"
    )


def lags(b: Burst, start: str, end: str) -> list[float]:
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
        f"{_three(lags(b, 'visible', 'on_nats'))} | {_three(lags(b, 'visible', 'received'))} | "
        f"{_three(lags(b, 'created', 'on_nats'))} | {on_nats:,} / {received:,} | "
        f"{b.busy_cores:.2f}: {b.gateway_cores:.2f}, {b.postgres_cores:.2f} | "
        f"{b.other_cores:.2f} | {w.late_p99_ms:.1f} |"
    )


def render(run: ScaleRun, previous: str, limits: list[str]) -> str:
    date = f"{run.started:%Y-%m-%d %H:%M} UTC"
    o = run.options
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
    for bullet in limits:
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
