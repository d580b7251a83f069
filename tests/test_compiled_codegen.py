"""The generated code's runtime (graphql/codegen.py): a resolver's coroutine runs at once up to
its first wait; one that waits is finished by whoever awaits its value, and one left waiting
when its run fails is finished in the background, never dropped half-way."""

from __future__ import annotations

import asyncio
import gc

import pytest

from leadgate.graphql.codegen import Fallback, Later, Runner


def runner() -> Runner:
    return Runner(schema=None, variables=None, infos=[])


async def test_a_resolver_coroutine_that_never_waits_is_answered_at_once() -> None:
    async def stage() -> str:
        return "qualified"

    assert runner().begin(stage()) == "qualified"


async def test_a_resolver_coroutine_that_waits_is_answered_when_its_value_is_awaited() -> None:
    async def advisor() -> str:
        await asyncio.sleep(0)
        return "Avery"

    later = runner().begin(advisor())

    assert isinstance(later, Later)
    assert await later.value() == "Avery"


async def test_resolvers_waiting_on_one_future_each_get_its_value() -> None:
    # A dataloader hands every load of one key the same future.
    stage: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def load() -> str:
        return await stage

    run = runner()
    first, second = run.begin(load()), run.begin(load())
    assert isinstance(first, Later)
    assert isinstance(second, Later)
    asyncio.get_running_loop().call_soon(stage.set_result, "qualified")

    assert list(await asyncio.gather(first.value(), second.value())) == ["qualified"] * 2


async def test_what_a_resolver_raises_after_waiting_makes_the_plan_fall_back() -> None:
    async def lead() -> str:
        await asyncio.sleep(0)
        raise LookupError("no such lead")

    later = runner().begin(lead())
    assert isinstance(later, Later)

    with pytest.raises(Fallback) as raised:
        await later.value()
    assert isinstance(raised.value.__cause__, LookupError)


async def test_a_resolver_left_waiting_when_its_run_falls_back_is_finished_not_dropped() -> None:
    release = asyncio.Event()
    finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def holds_a_connection() -> None:
        await release.wait()
        finished.set_result("released")

    def complete(run: Runner, _source: object) -> object:
        assert isinstance(run.begin(holds_a_connection()), Later)
        raise Fallback("a sibling resolver raised")

    with pytest.raises(Fallback):
        await runner().run(complete, None)
    gc.collect()  # nothing of the failed run holds the coroutine any more
    release.set()

    assert await asyncio.wait_for(finished, 5) == "released"


async def test_cancelling_a_run_cancels_the_resolver_it_waits_on() -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    def complete(run: Runner, _source: object) -> object:
        return run.begin(slow())

    task = asyncio.ensure_future(runner().run(complete, None))
    await asyncio.sleep(0)  # the run is now waiting on the resolver's sleep
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
