"""bench/SCALE.md's "what limits each figure": read from the latest run's measurements (CPU per
process, the machine's load, what PostgreSQL's backends waited for, the relay read's plan)."""

from __future__ import annotations

import statistics
from typing import Final

from loadgen import Series
from pgwatch import Waits
from report import fmt_ratio, ratio
from scale_report import NATS, NOTIFY, ScaleRun, find, lags, median, organizations, quantile

from leadgate.events.nats_bus import POLL_INTERVAL

# A figure is "bound by the cores" when the machine was this busy during it.
SATURATED: Final = 0.9


def _cores(series: Series, what: str) -> float:
    """Median over the rounds of the cores' worth of CPU used by the server or PostgreSQL."""
    values = [
        (m.server_cpu_s if what == "server" else m.postgres_cpu_s) / m.seconds
        for m in series.rounds
        if m.seconds
    ]
    return statistics.median(values) if values else 0.0


def _machine_text(busy: float, cores: int, other: float) -> str:
    return f"the machine was {busy:.2f} of {cores} cores busy (other processes {other:.2f})"


def _list_limits(run: ScaleRun, cores: int) -> list[str]:
    one, two = find(run.lists, "workers 1"), find(run.lists, "workers 2")
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
        per_org = s.rps / int(organizations(k.workload))
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
        base = find(run.writes, NOTIFY, conns, workload)
        nats = find(run.writes, NATS, conns, workload)
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
    if run.burst is not None and (relay := lags(run.burst, "visible", "on_nats")):
        bus = f" (commit to NATS took {median(relay):.0f} ms at p50 in the burst, section 4)"
    return [
        f"**Fan-out, {f.subscribers:,} subscribers over {f.gateways} processes (p50 "
        f"{median(d.changed_ms):.0f} ms, p99 {quantile(d.changed_ms, 99):.0f} ms)**: a move cost "
        f"the gateways {f.gateways_cpu_ms:.0f} ms of CPU ({per:.3f} ms per subscriber; "
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
    grew = median(closing) > 2 * median(opening) + 50
    subscriber = lags(b, "visible", "received")
    read = b.relay_read
    lag = (
        f"**Relay lag (commit→NATS p50 {median(relay):.0f} ms, p99 {quantile(relay, 99):.0f} ms, "
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
        f"the burst's first second {median(opening):.0f} ms, in its last "
        f"{median(closing):.0f} ms: "
        + ("it grew, the relay fell behind the writes." if grew else "the relay kept up.")
        + f" A GraphQL subscriber got events {median(subscriber):.0f} ms after commit at p50 "
        f"(p99 {quantile(subscriber, 99):.0f} ms): the gateway's consumer, its read of the events "
        "from the table and the fan-out add "
        f"{max(0.0, median(subscriber) - median(relay)):.0f} ms. From `created_at`, the "
        f"transaction's start, commit came {median(lags(b, 'created', 'visible')):.0f} ms "
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
