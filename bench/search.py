"""`make bench-search`: `leads(search:)` at 1,000,000 leads, one term class at a time.

    .venv/bin/python bench/search.py [--leads N | --quick] [--rounds R] [--duration S]

1. A throwaway database (bench/stack.py), seeded as `make bench` seeds it (bench/fixture.py:
   `leadgate demo-data --seed 42`, then VACUUM ANALYZE).
2. The gateway on it (`leadgate serve`, pool 8, no webhook dispatcher), as bench/run.py runs it.
3. For each term class: the leads it matches (counted in SQL), the gateway's `total` and
   `totalIsExact`, SQL statements per request (/metrics), and EXPLAIN (ANALYZE, BUFFERS) of
   the statement the gateway sends for it (store.leads.page_statement).
4. wrk at 1 and at 16 connections: a warm-up, then interleaved rounds (each runs every case
   once, the order rotating), with the CPU the gateway and PostgreSQL spent per request and the
   load other processes put on the machine meanwhile.
5. bench/SEARCH.md (bench/out/SEARCH-quick.md for --quick); raw wrk output and logs go to
   bench/out/<timestamp>/.

Everything it starts, and the database, is cleaned up however the run ends (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import signal
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import aiohttp
import asyncpg
import report
from fixture import COMMON_TERM, NO_MATCH_TERM, Fixture, seed
from loadgen import QUIET_LOAD, QUIET_WINDOW, Case, Measurement, Series, Wrk
from stack import (
    ROOT,
    CpuMeter,
    Database,
    Server,
    add_schedule_arguments,
    ensure_wrk,
    free_port,
    leadgate,
    run_benchmark,
    say,
    schedule,
    start_server,
    throwaway_database,
)
from workloads import SEARCH_SELECTION, dump

from leadgate.config import Settings
from leadgate.domain import paging
from leadgate.store import leads

POOL_SIZE: Final = 8  # as bench/run.py
CONNECTIONS: Final = (1, 16)
TARGET_P99_MS: Final = 20.0
STATEMENT_SAMPLE: Final = 20
PAGE_SIZE: Final = 20


@dataclass(frozen=True, slots=True)
class TermClass:
    name: str
    term: str
    meaning: str


def term_classes(fixture: Fixture) -> list[TermClass]:
    """bench/workloads.py's three terms, and the other shapes a search box receives."""
    return [
        TermClass("common", COMMON_TERM, "a word of 1 lead in 20 (business name, email domain)"),
        TermClass("prefix", COMMON_TERM[:3], "the first letters of the common word"),
        TermClass("one letter", COMMON_TERM[0], "every word starting with it: a true prefix scan"),
        TermClass("two words", f"{COMMON_TERM} bakery", "two words of 1 lead in 20, both required"),
        TermClass("rare", fixture.rare_term, "one email domain, about 1 lead in 20,000"),
        TermClass("none", NO_MATCH_TERM, "a word no lead has"),
    ]


def search_body(term: str) -> dict[str, Any]:
    """A list view's search (bench/workloads.py's selection) that also asks whether the total
    is exact."""
    return {
        "query": f"query ($search: String) {{ leads(limit: {PAGE_SIZE}, search: $search) "
        f"{{ total totalIsExact nodes {{ {SEARCH_SELECTION} }} }} }}",
        "variables": {"search": term},
    }


@dataclass(frozen=True, slots=True)
class Options:
    leads: int
    rounds: int
    seconds: int
    warmup: int
    quiet_wait: int
    out: Path
    quick: bool


def parse_options(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_schedule_arguments(parser, leads=1_000_000, report="SEARCH.md")
    args = parser.parse_args(argv)
    return Options(**schedule(args, leads=1_000_000, report="SEARCH.md"))


@dataclass(slots=True)
class Answer:
    """What one term class finds, and how the gateway's statement gets there."""

    matches: int = 0
    total: int = 0
    total_is_exact: bool = False
    planned: int | None = None
    counted: int | None = None
    statements: float = 0.0
    planning_ms: float = 0.0
    execution_ms: float = 0.0
    buffers: int = 0
    gin_ids: int = 0
    heap_rows: int = 0
    walked: int = 0
    plan: str = ""


@dataclass(slots=True)
class Results:
    started: dt.datetime
    options: Options
    log_dir: Path
    classes: list[TermClass] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)
    series: dict[tuple[str, int], Series] = field(default_factory=dict)
    exact_total_limit: int = 0
    finished: dt.datetime | None = None
    idle_load: float = 0.0
    busy_starts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --- what each class finds ----------------------------------------------------------------


def _walk_plan(node: dict[str, Any], answer: Answer) -> None:
    """Sum, over the plan's executed nodes, the ids read from the GIN index, the leads fetched
    by bitmap, and the leads an index walk read (those it returned and those it passed)."""
    loops = node.get("Actual Loops", 0)
    rows = node.get("Actual Rows", 0) * loops
    kind = node.get("Node Type", "")
    if kind == "Bitmap Index Scan" and node.get("Index Name") == "leads_search":
        answer.gin_ids += rows
    elif kind == "Bitmap Heap Scan" and node.get("Relation Name") == "leads":
        answer.heap_rows += rows
    elif kind == "Index Scan" and node.get("Relation Name") == "leads":
        answer.walked += rows + node.get("Rows Removed by Filter", 0) * loops
    for child in node.get("Plans", []):
        _walk_plan(child, answer)


async def explain(conn: asyncpg.Connection, fixture: Fixture, term: str, answer: Answer) -> None:
    """The gateway's statement for a search: its totals, and EXPLAIN (ANALYZE, BUFFERS)."""
    query = paging.lead_query(page=1, limit=PAGE_SIZE, search=term)
    limit = Settings.from_env().exact_total_limit
    statement, arguments = leads.page_statement(UUID(fixture.org), query, exact_limit=limit)
    row = (await conn.fetch(statement, *arguments))[0]
    answer.planned, answer.counted = row["planned"], row["counted"]
    await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *arguments)  # warm
    plan = json.loads(
        await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, *arguments)
    )[0]
    answer.planning_ms = plan["Planning Time"]
    answer.execution_ms = plan["Execution Time"]
    top = plan["Plan"]
    answer.buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    _walk_plan(top, answer)
    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *arguments)
    answer.plan = "\n".join(r[0] for r in rows)


async def graphql(http: aiohttp.ClientSession, url: str, body: dict[str, Any], key: str) -> Any:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as response:
        data = await response.json()
    if response.status != 200 or "errors" in data:
        raise RuntimeError(f"{url} answered {response.status}: {data}")
    return data["data"]


async def statements_per_request(
    http: aiohttp.ClientSession, gateway: Server, body: dict[str, Any], key: str
) -> float:
    """SQL statements per request, from /metrics around sequential requests."""

    async def total() -> float:
        async with http.get(gateway.base_url + "/metrics") as response:
            text = await response.text()
        for line in text.splitlines():
            if line.startswith("leadgate_sql_statements_total "):
                return float(line.split()[1])
        raise RuntimeError("no leadgate_sql_statements_total in /metrics")

    url = gateway.base_url + "/graphql"
    before = await total()
    for _ in range(STATEMENT_SAMPLE):
        await graphql(http, url, body, key)
    return (await total() - before) / STATEMENT_SAMPLE


async def answers(
    db: Database, gateway: Server, fixture: Fixture, classes: list[TermClass]
) -> dict[str, Answer]:
    found = {}
    conn = await asyncpg.connect(db.url, server_settings={"plan_cache_mode": "force_custom_plan"})
    try:
        async with aiohttp.ClientSession() as http:
            for c in classes:
                answer = Answer()
                answer.matches = await conn.fetchval(
                    "SELECT count(*) FROM leads WHERE organization_id = $1 "
                    "AND search @@ to_tsquery('simple', $2) AND archived_at IS NULL",
                    fixture.org,
                    leads.tsquery(paging.search_terms(c.term)),
                )
                body = search_body(c.term)
                page = (await graphql(http, gateway.base_url + "/graphql", body, fixture.key))[
                    "leads"
                ]
                answer.total, answer.total_is_exact = page["total"], page["totalIsExact"]
                answer.statements = await statements_per_request(http, gateway, body, fixture.key)
                await explain(conn, fixture, c.term, answer)
                found[c.name] = answer
                say(
                    f"  {c.name:<11} {c.term!r}: {answer.matches:,} matches, total "
                    f"{answer.total:,} ({'exact' if answer.total_is_exact else 'estimate'}), "
                    f"planned {answer.planned}, counted {answer.counted}, "
                    f"execution {answer.execution_ms:.2f} ms"
                )
    finally:
        await conn.close()
    return found


# --- load -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Meter:
    """wrk runs against the gateway, each after waiting (up to `quiet_wait` s) for other
    processes to use under QUIET_LOAD cores, with the CPU the gateway and PostgreSQL used."""

    wrk: Wrk
    cpu: CpuMeter
    gateway: Server
    quiet_wait: int
    results: Results

    async def settle(self, label: str) -> None:
        deadline = time.monotonic() + self.quiet_wait
        while True:
            before = self.cpu.snapshot()
            await asyncio.sleep(QUIET_WINDOW)
            load = self.cpu.snapshot().other_since(before) / QUIET_WINDOW
            if load < QUIET_LOAD:
                return
            if time.monotonic() >= deadline:
                if self.quiet_wait:
                    self.results.busy_starts.append(f"{label}: {load:.2f} cores")
                return

    async def run(self, case: Case, seconds: int, label: str) -> Measurement:
        await self.settle(f"{label} {case.workload} c{case.connections}")
        used = self.gateway.cpu_seconds()
        before = self.cpu.snapshot()
        m = await self.wrk.run(case, seconds, label)
        after = self.cpu.snapshot()
        if m.bad or m.socket_errors:
            self.results.problems.append(
                f"{label} {case.workload} c{case.connections}: {m.bad} bad responses, "
                f"{m.socket_errors} socket errors of {m.requests}; first: `{m.sample[:200]}`"
            )
        return dataclasses.replace(
            m,
            server_cpu_s=self.gateway.cpu_seconds() - used,
            postgres_cpu_s=after.postgres - before.postgres,
            other_cores=after.other_since(before) / m.seconds if m.seconds else 0.0,
        )


async def measure(meter: Meter, cases: list[Case], options: Options) -> dict[Case, Series]:
    series = {case: Series(case) for case in cases}
    say(f"warm-up: {len(cases)} runs of {options.warmup}s")
    for case in cases:
        await meter.run(case, options.warmup, "warmup")
    for r in range(options.rounds):
        say(f"round {r + 1}/{options.rounds}: {len(cases)} runs of {options.seconds}s")
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            m = await meter.run(case, options.seconds, f"round{r + 1}")
            series[case].rounds.append(m)
            say(
                f"  {case.workload:<18} c{case.connections:<3} {m.rps:8.1f} req/s  "
                f"p50 {m.p50_ms:6.2f}  p99 {m.p99_ms:6.2f} ms  cpu {m.cpu_ms_per_request:5.2f} "
                f"+ pg {m.postgres_ms_per_request:5.2f} ms/req  other {m.other_cores:.2f}"
            )
    return series


# --- the report -----------------------------------------------------------------------------


async def _version(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    return out.decode(errors="replace").strip()


def _machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": cpu,
        "memory": f"{memory_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
    }


def _ms(value: float) -> str:
    return f"{value:.2f}"


def render(run: report.Run, results: Results) -> str:
    o = results.options
    took = (results.finished or results.started) - results.started
    limit = results.exact_total_limit
    lines = [
        "# leadgate search benchmark",
        "",
        "Written by `make bench-search` (`bench/search.py`); do not edit by hand. Absolute "
        "figures drift between runs on this shared 2-core machine: read them with the load "
        "column, and with the CPU per request, which load disturbs less.",
        "",
        f"- **Date**: {results.started:%Y-%m-%d %H:%M} UTC (the run took "
        f"{took.total_seconds() / 60:.1f} min)",
        "- **Machine**: " + ", ".join(f"{k} {v}" for k, v in run.machine.items()),
        "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in run.versions.items()),
        f"- **Gateway source**: {run.source}",
        f"- **Data**: one organization with {run.leads:,} leads from `leadgate demo-data "
        f"--seed 42` (seeded in {run.seed_seconds:.0f} s), then `VACUUM ANALYZE`; "
        + ", ".join(f"`{k}` {v}" for k, v in sorted(run.table_sizes.items()))
        + ". Nothing writes during the run.",
        f"- **Totals**: `LEADGATE_EXACT_TOTAL_LIMIT` {limit:,}: a search's total is counted up "
        f"to {limit:,} matches, and is the planner's estimate (`totalIsExact: false`) past "
        f"them, or when the planner expects over {leads.PLANNED_MARGIN}× as many.",
        f"- **Load**: with the gateway idle, other processes used {results.idle_load:.2f} "
        "cores before the runs; the *other load* column is the median over a case's rounds.",
        "",
        "## Method",
        "",
        f"- Request: `leads(limit: {PAGE_SIZE}, search: $search) {{ total totalIsExact nodes "
        f"{{ {SEARCH_SELECTION} }} }}` (bench/workloads.py's list-view selection), POSTed by "
        "`wrk -t1 --latency` at 1 connection (one request at a time: its latency) and at 16 "
        "(closed loop), wrk, the gateway and PostgreSQL sharing the machine's 2 cores.",
        f"- Schedule: a {o.warmup} s warm-up per case, then {o.rounds} rounds of {o.seconds} s; "
        "each round runs every case once, the order rotating. req/s is the median of the "
        "rounds, p50 and p99 the medians of the rounds' wrk percentiles (the worst round's p99 "
        f"beside it). Before each run, up to {o.quiet_wait} s of waiting for other processes "
        f"to use under {QUIET_LOAD} cores.",
        "- Gateway CPU = user + system time of the `leadgate serve` process per request; "
        "PostgreSQL CPU = the same for the embedded server's processes; other load = cores "
        "used by anything else on the machine meanwhile.",
        "- Matches are counted in SQL beside the run; statements per request come from "
        "`leadgate_sql_statements_total` in `/metrics`; the plans are EXPLAIN (ANALYZE, "
        "BUFFERS) of the statement the gateway sends (`store.leads.page_statement`), run "
        "once warm.",
        "",
        "## Term classes",
        "",
        "| class | term | what it is | matches | `total` | exact | planned | counted | "
        "statements/request |",
        "|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for c in results.classes:
        a = results.answers[c.name]
        lines.append(
            f"| {c.name} | `{c.term}` | {c.meaning} | {a.matches:,} | {a.total:,} | "
            f"{'yes' if a.total_is_exact else 'no'} | {a.planned if a.planned is not None else '—'}"
            f" | {a.counted if a.counted is not None else '—'} | {a.statements:.2f} |"
        )
    lines += [
        "",
        "*planned* is the planner's estimate of the matches; *counted* how many the statement "
        f"counted (it stops at {limit + 1:,}; — : not counted, the estimate being over "
        f"{limit * leads.PLANNED_MARGIN:,}).",
        "",
        "## Results",
        "",
        "| class | conns | req/s | rounds (req/s) | p50 ms | p99 ms (worst) | gateway CPU "
        "ms/req | PostgreSQL CPU ms/req | other load | bad |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in CONNECTIONS:
        for c in results.classes:
            s = results.series[c.name, n]
            lines.append(
                f"| {c.name} | {n} | **{s.rps:,.0f}** | "
                + " / ".join(f"{m.rps:.0f}" for m in s.rounds)
                + f" | {_ms(s.p50_ms)} | {_ms(s.p99_ms)} ({_ms(s.worst_p99_ms)}) | "
                f"{_ms(s.cpu_ms_per_request)} | {_ms(s.postgres_ms_per_request)} | "
                f"{s.other_cores:.2f} | {s.bad} |"
            )
    lines += [
        "",
        f"## Target: p99 < {TARGET_P99_MS:.0f} ms at 1 connection for every class",
        "",
        "| class | p99 ms, 1 connection | met | p99 ms, 16 connections | req/s, 16 |",
        "|---|---:|---|---:|---:|",
    ]
    for c in results.classes:
        one, many = results.series[c.name, 1], results.series[c.name, 16]
        lines.append(
            f"| {c.name} | {_ms(one.p99_ms)} | "
            f"{'met' if one.p99_ms < TARGET_P99_MS else 'not met'} | {_ms(many.p99_ms)} | "
            f"{many.rps:,.0f} |"
        )
    lines += [
        "",
        "## Where the time goes (EXPLAIN ANALYZE, one warm run)",
        "",
        "| class | planning ms | execution ms | buffers | ids from the GIN index | leads "
        "fetched by bitmap | leads walked in order |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results.classes:
        a = results.answers[c.name]
        lines.append(
            f"| {c.name} | {_ms(a.planning_ms)} | {_ms(a.execution_ms)} | {a.buffers:,} | "
            f"{a.gin_ids:,} | {a.heap_rows:,} | {a.walked:,} |"
        )
    lines += [
        "",
        "*Leads walked in order*: read along `leads_newest` (newest first) until the page is "
        "full, those that do not match included; *ids from the GIN index*: every match's id, "
        "collected before the first lead is fetched; *buffers*: shared buffers hit or read.",
        "",
        f"### The common term (`{results.classes[0].term}`)",
        "",
        "```",
        results.answers[results.classes[0].name].plan,
        "```",
        "",
    ]
    if results.busy_starts:
        lines += ["## Runs started on a busy machine", ""]
        lines += [f"- {b}" for b in results.busy_starts] + [""]
    if results.problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in results.problems] + [""]
    return "\n".join(lines)


# --- the run --------------------------------------------------------------------------------


async def start_gateway(stack: contextlib.AsyncExitStack, db: Database, log_dir: Path) -> Server:
    port = free_port()
    env = {
        **db.env,
        "LEADGATE_DISPATCHER": "0",
        "LEADGATE_POOL_MIN": str(POOL_SIZE),
        "LEADGATE_POOL_MAX": str(POOL_SIZE),
    }
    return await start_server(
        stack,
        name="gateway",
        argv=leadgate("serve", "--port", str(port)),
        env=env,
        port=port,
        ready_path="/readyz",
        log_dir=log_dir,
    )


async def main(options: Options) -> Path:
    # SIGTERM cancels like Ctrl-C does.
    this = asyncio.current_task()
    assert this is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    started = dt.datetime.now(dt.UTC)
    log_dir = ROOT / "bench" / "out" / f"search-{started:%Y%m%d-%H%M%S}"
    (log_dir / "bodies").mkdir(parents=True, exist_ok=True)
    say(f"logs and raw wrk output: {log_dir}")
    wrk = Wrk(ensure_wrk(), log_dir / "wrk")
    wrk.log_dir.mkdir()
    run = report.Run(started=started, options=dataclasses.asdict(options), log_dir=log_dir)
    results = Results(started=started, options=options, log_dir=log_dir)
    results.exact_total_limit = Settings.from_env().exact_total_limit
    async with contextlib.AsyncExitStack() as stack:
        db = await stack.enter_async_context(throwaway_database())
        # A COPY batch that flushes the GIN index's pending list can take longer than the
        # gateway's 15 s statement timeout at this size on a busy machine: none for seeding.
        seeding = dataclasses.replace(db, env={**db.env, "LEADGATE_STATEMENT_TIMEOUT_MS": "0"})
        fixture = await seed(seeding, options.leads, run)
        run.leads = options.leads
        gateway = await start_gateway(stack, db, log_dir)
        results.classes = term_classes(fixture)
        say("what each class finds")
        results.answers = await answers(db, gateway, fixture, results.classes)
        cpu = CpuMeter([gateway.pid], db.postmaster_pid)
        before = cpu.snapshot()
        await asyncio.sleep(3)
        results.idle_load = cpu.snapshot().other_since(before) / 3
        say(f"other processes' load with the gateway idle: {results.idle_load:.2f} cores")
        url, auth = gateway.base_url + "/graphql", f"Bearer {fixture.key}"
        cases = []
        for n in CONNECTIONS:
            for c in results.classes:
                body = log_dir / "bodies" / f"search-{c.name.replace(' ', '-')}.json"
                body.write_text(dump(search_body(c.term)) + "\n")
                cases.append(Case(c.name, "gateway", url, "static.lua", (str(body), auth), n))
        meter = Meter(wrk, cpu, gateway, options.quiet_wait, results)
        measured = await measure(meter, cases, options)
        results.series = {(case.workload, case.connections): s for case, s in measured.items()}
    results.finished = dt.datetime.now(dt.UTC)
    run.machine = _machine()
    run.versions = {
        "Python": platform.python_version(),
        **{package: metadata.version(package) for package in ("strawberry-graphql", "asyncpg")},
        "wrk": (await _version("wrk", "-v")).split(" [", 1)[0].removeprefix("wrk "),
        # What fixture.seed found.
        **{k: v for k, v in run.versions.items() if k == "PostgreSQL"},
    }
    head = await _version("git", "rev-parse", "--short", "HEAD")
    changed = len((await _version("git", "status", "--porcelain", "--", "src")).splitlines())
    run.source = f"commit {head}" + (
        f" with uncommitted changes in {changed} file(s) under src/" if changed else ", clean src/"
    )
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(render(run, results))
    return options.out


def entry() -> None:
    options = parse_options()
    run_benchmark(main(options))


if __name__ == "__main__":
    entry()
