"""Open-loop load: POST bodies at a fixed rate, however long the answers take.

    .venv/bin/python bench/openloop.py URL AUTHORIZATION BODIES_FILE --rate 1000 --seconds 10

wrk is closed-loop (a connection sends its next request when the previous answer arrived), so
a slow server lowers the rate it is offered. Here request i is due at start + i / rate and is
launched then, whatever is still in flight, cycling through the file's lines (one JSON body
each, as bench/wrk/dynamic.lua's `lines` mode). It goes out on one of --connections
connections, and waits in the client while all are busy: that wait counts, since latency runs
from when the request was due, so a server that falls behind shows its backlog instead of
hiding it. A response counts as bad unless it is a 200 without a top-level GraphQL "errors".

Prints one JSON object: requests due and answered, the achieved rate (good answers over the
time from the first due to the last answer), latency percentiles from due, how late the
client itself launched requests (its own saturation), and its CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp


@dataclass(slots=True)
class Outcome:
    due: int = 0
    good: int = 0
    bad: int = 0
    sample: str = ""
    latencies: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    last_answer: float = 0.0


@dataclass(frozen=True, slots=True)
class Summary:
    rate: float
    seconds: float
    due: int
    good: int
    bad: int
    sample: str
    achieved_rate: float
    # From due to answered, good and bad alike.
    p50_ms: float
    p99_ms: float
    max_ms: float
    # How long after its due time the client launched a request.
    late_p99_ms: float
    client_cpu_s: float


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(
    url: str, authorization: str, bodies: list[bytes], *, rate: float, seconds: float, conns: int
) -> Summary:
    headers = {"Content-Type": "application/json", "Authorization": authorization}
    outcome = Outcome()
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=conns), timeout=timeout
    ) as session:

        async def one(body: bytes, due: float) -> None:
            outcome.late.append(loop.time() - due)
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    text = await response.text()
                    ok = response.status == 200 and '"errors":' not in text
            except (aiohttp.ClientError, TimeoutError) as error:
                ok, text = False, repr(error)
            answered = loop.time()
            outcome.latencies.append(answered - due)
            outcome.last_answer = max(outcome.last_answer, answered)
            if ok:
                outcome.good += 1
            else:
                outcome.bad += 1
                outcome.sample = outcome.sample or text[:300]

        cpu = resource.getrusage(resource.RUSAGE_SELF)
        start = loop.time() + 0.05
        tasks = []
        for i in range(round(rate * seconds)):
            due = start + i / rate
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(bodies[i % len(bodies)], due)))
        outcome.due = len(tasks)
        await asyncio.gather(*tasks)
        used = resource.getrusage(resource.RUSAGE_SELF)
    span = outcome.last_answer - start
    return Summary(
        rate=rate,
        seconds=seconds,
        due=outcome.due,
        good=outcome.good,
        bad=outcome.bad,
        sample=outcome.sample,
        achieved_rate=outcome.good / span if span > 0 else 0.0,
        p50_ms=1e3 * _quantile(outcome.latencies, 0.5),
        p99_ms=1e3 * _quantile(outcome.latencies, 0.99),
        max_ms=1e3 * max(outcome.latencies, default=0.0),
        late_p99_ms=1e3 * _quantile(outcome.late, 0.99),
        client_cpu_s=used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("authorization", help="the Authorization header's value")
    parser.add_argument("bodies", type=Path, help="one JSON request body a line")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line]
    summary = asyncio.run(
        drive(
            args.url,
            args.authorization,
            bodies,
            rate=args.rate,
            seconds=args.seconds,
            conns=args.connections,
        )
    )
    print(json.dumps(asdict(summary)), flush=True)


if __name__ == "__main__":
    main()
