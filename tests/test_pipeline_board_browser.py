"""The pipeline board (examples/pipeline-board) in headless Chromium, against real processes.

A `leadgate serve` (no --demo, so only `LEADGATE_CORS_ORIGINS` admits other origins; its JWKS
file trusts the development key that `leadgate dev-token` signs with) and two `leadgate board`
servers on ports of their own: one origin on the gateway's list, one not. The board signs in
with a dev token from `?token=`. Every request a page makes beyond loopback is blocked.

The processes start once for the module (each costs a second or two); the moves the tests make
are made on leads of the tenant that only this module's database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import aiohttp
import asyncpg
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    WebSocketRoute,
    async_playwright,
)

from leadgate.config import Settings
from leadgate.db.migrate import migrate
from leadgate.db.pool import create_pool
from leadgate.services import dev_tokens
from tests.databases import create_database, drop_database
from tests.processes import LEADGATE, free_port, leadgate
from tests.support import Api, Tenant, bearer, make_tenant, ok

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
STARTUP_DEADLINE: Final = 30.0
SHUTDOWN_DEADLINE: Final = 10.0
DEMO_LEADS: Final = 24
LIVE_DEADLINE: Final = 1.0  # issue 10: a move by another client shows within a second
REST_MOVES: Final = 5

BOARD_TRUTH: Final = """
{ stages { id stageLabel position }
  leads(limit: 100) { total nodes { id businessName stage { id } } } }
"""


# --- processes: a gateway and two board servers ---------------------------------------------


@dataclass(frozen=True)
class Service:
    process: asyncio.subprocess.Process
    origin: str
    log: Path


async def wait_until_up(session: aiohttp.ClientSession, service: Service, path: str) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        assert service.process.returncode is None, f"exited\n{service.log.read_text()}"
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with session.get(f"{service.origin}{path}") as resp:
                if resp.status == 200:
                    return
        assert time.monotonic() < deadline, f"{path} never answered\n{service.log.read_text()}"
        await asyncio.sleep(0.1)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), SHUTDOWN_DEADLINE)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def running(
    name: str, args: list[str], *, port: int, env: Mapping[str, str], directory: Path
) -> AsyncIterator[Service]:
    """`leadgate <args> --port <port>`, stopped (SIGTERM, then SIGKILL) on the way out."""
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(LEADGATE),
            *args,
            "--port",
            str(port),
            env=dict(env),
            cwd=directory,
            stdout=out,
            stderr=out,
        )
        try:
            yield Service(process, f"http://127.0.0.1:{port}", log)
        finally:
            await stop(process)


@dataclass(frozen=True)
class Deployment:
    gateway: str
    board: str  # on LEADGATE_CORS_ORIGINS
    stranger: str  # the same board from an origin that is not
    token: str
    tenant: Tenant
    api: Api


@pytest.fixture(scope="module")
async def board_database_url(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url, prefix="leadgate_board")
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="module")
async def board_tenant(board_database_url: str) -> AsyncIterator[Tenant]:
    pool: asyncpg.Pool = await create_pool(Settings(database_url=board_database_url))
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield await make_tenant(pool, leads=DEMO_LEADS, name="Board Lending")
    finally:
        await pool.close()


@pytest.fixture(scope="module")
async def deployment(
    board_database_url: str, board_tenant: Tenant, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    directory = tmp_path_factory.mktemp("pipeline_board")
    # The gateway trusts the data directory's development key through a JWKS file, as a
    # production gateway trusts its identity provider's (`--demo` would also allow every
    # loopback origin, and this test needs one that is refused).
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps(dev_tokens.public_jwks(directory)))
    board_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": board_database_url,
        "LEADGATE_DATA_DIR": str(directory),
        "LEADGATE_JWT_JWKS_FILE": str(jwks),
        "LEADGATE_CORS_ORIGINS": f"http://127.0.0.1:{board_port}",
        "LEADGATE_DISPATCHER": "0",
    }
    minted = await leadgate(
        "dev-token", "--org", str(board_tenant.id), "--role", "editor", env=env, cwd=directory
    )
    token = minted.ok().stdout.strip()
    async with contextlib.AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(
            running("gateway", ["serve"], port=free_port(), env=env, directory=directory)
        )
        board = await stack.enter_async_context(
            running("board", ["board"], port=board_port, env=env, directory=directory)
        )
        stranger = await stack.enter_async_context(
            running("stranger", ["board"], port=free_port(), env=env, directory=directory)
        )
        session = await stack.enter_async_context(aiohttp.ClientSession())
        await asyncio.gather(
            wait_until_up(session, gateway, "/healthz"),
            wait_until_up(session, board, "/"),
            wait_until_up(session, stranger, "/"),
        )
        yield Deployment(
            gateway=gateway.origin,
            board=board.origin,
            stranger=stranger.origin,
            token=token,
            tenant=board_tenant,
            api=Api(session, gateway.origin),
        )


# --- the browser ------------------------------------------------------------------------------


@dataclass
class BoardPage:
    """A page whose non-loopback requests are blocked and remembered, as are its JS errors and
    console lines (where Chromium reports CORS and WebSocket handshake refusals)."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def assert_stayed_offline(self) -> None:
        assert self.blocked == [], f"the page reached beyond loopback: {self.blocked}"
        assert self.errors == [], f"uncaught errors in the page: {self.errors}"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def board_page(browser: Browser) -> AsyncIterator[BoardPage]:
    context = await browser.new_context()
    context.set_default_timeout(15_000)
    page = BoardPage(page=await context.new_page())

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            await route.continue_()
        else:
            page.blocked.append(route.request.url)
            await route.abort()

    def remember(message: ConsoleMessage) -> None:
        page.console.append(message.text)

    await context.route("**/*", loopback_only)
    page.page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.page.on("console", remember)
    yield page
    await context.close()


async def open_board(page: Page, origin: str, deployment: Deployment) -> None:
    query = urlencode({"api": deployment.gateway, "token": deployment.token})
    response = await page.goto(f"{origin}/?{query}")
    assert response is not None
    assert response.status == 200, f"the board answered {response.status}"


async def until_live(page: Page) -> None:
    await page.wait_for_selector("body[data-state='live']")


async def layout(page: Page) -> list[dict[str, Any]]:
    """The board's columns in order, each with its stage, label and cards."""
    columns: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('.column')].map(column => ({
            stageId: column.dataset.stageId,
            label: column.querySelector('.label').textContent,
            count: column.querySelector('.count').textContent,
            cards: [...column.querySelectorAll('.card')].map(card => ({
                id: card.dataset.leadId,
                name: card.querySelector('.name').textContent,
                amount: card.querySelector('.amount').textContent,
                advisor: card.querySelector('.advisor').textContent,
                selected: card.querySelector('select').value,
            })),
        }))"""
    )
    return columns


async def some_card(page: Page, *, last: bool = False) -> dict[str, Any]:
    """The first (or last) card on the board."""
    cards: list[dict[str, Any]] = [c for column in await layout(page) for c in column["cards"]]
    assert cards, "the board shows no card"
    return cards[-1 if last else 0]


async def until_in_column(page: Page, lead_id: str, stage_id: str) -> None:
    await page.wait_for_function(
        """([lead, stage]) => document.querySelector(
            `.column[data-stage-id="${stage}"] .card[data-lead-id="${lead}"]`) !== null""",
        arg=[lead_id, stage_id],
        polling="raf",
    )


def dollars(amount: str | None) -> str:
    return "no amount requested" if amount is None else f"${round(float(amount)):,}"


async def truth(deployment: Deployment) -> Any:
    """What the board should show, read through GraphQL with the tenant's API key."""
    return await ok(
        deployment.api,
        deployment.tenant.read_key,
        """{ stages { id stageLabel position }
             leads(limit: 100) { total nodes {
               id businessName requestedAmount stage { id } primaryAdvisor { name } } } }""",
    )


async def stage_through_rest(deployment: Deployment, lead_id: str) -> str:
    status, body, _ = await deployment.api.rest(
        "GET", f"/v1/leads/{lead_id}", deployment.tenant.read_key
    )
    assert status == 200, body
    stage_id: str = body["data"]["attributes"]["stage"]["id"]
    return stage_id


async def rest_move(deployment: Deployment, lead_id: str, stage_id: str) -> None:
    status, body, _ = await deployment.api.rest(
        "POST",
        f"/v1/leads/{lead_id}/move",
        deployment.tenant.write_key,
        json={"stageId": stage_id},
    )
    assert status == 200, body


async def last_event_id(deployment: Deployment, lead_id: str) -> str:
    data = await ok(
        deployment.api,
        deployment.tenant.read_key,
        "query($id: ID!) { lead(id: $id) { history(limit: 1) { id } } }",
        {"id": lead_id},
    )
    event_id: str = data["lead"]["history"][0]["id"]
    return event_id


def another_stage(deployment: Deployment, stage_id: str, step: int = 1) -> str:
    stages = [str(s) for s in deployment.tenant.stage_ids]
    return stages[(stages.index(stage_id) + step) % len(stages)]


# --- the board ------------------------------------------------------------------------------


async def test_the_board_signs_in_with_a_dev_token_and_shows_the_demo_leads_by_stage(
    board_page: BoardPage, deployment: Deployment
) -> None:
    expected = await truth(deployment)
    page = board_page.page

    await open_board(page, deployment.board, deployment)
    await until_live(page)
    columns = await layout(page)

    stages = sorted(expected["stages"], key=lambda s: s["position"])
    assert [(c["stageId"], c["label"]) for c in columns] == [
        (s["id"], s["stageLabel"]) for s in stages
    ]
    shown = {
        card["id"]: (column["stageId"], card) for column in columns for card in column["cards"]
    }
    assert expected["leads"]["total"] == DEMO_LEADS
    assert set(shown) == {lead["id"] for lead in expected["leads"]["nodes"]}
    for lead in expected["leads"]["nodes"]:
        stage_id, card = shown[lead["id"]]
        assert stage_id == card["selected"] == lead["stage"]["id"]
        advisor = (lead["primaryAdvisor"] or {}).get("name", "Unassigned")
        assert (card["name"], card["amount"], card["advisor"]) == (
            lead["businessName"],
            dollars(lead["requestedAmount"]),
            advisor,
        )
    assert [int(c["count"]) for c in columns] == [len(c["cards"]) for c in columns]
    assert board_page.console == []  # no failed request, no warning
    board_page.assert_stayed_offline()


async def test_a_move_made_through_rest_by_another_client_shows_on_the_board_within_a_second(
    board_page: BoardPage, deployment: Deployment
) -> None:
    page = board_page.page
    await open_board(page, deployment.board, deployment)
    await until_live(page)
    lead_id = (await some_card(page))["id"]
    stage_id = await stage_through_rest(deployment, lead_id)

    latencies: list[float] = []
    for _ in range(REST_MOVES):
        stage_id = another_stage(deployment, stage_id)
        started = time.monotonic()
        await rest_move(deployment, lead_id, stage_id)
        await until_in_column(page, lead_id, stage_id)
        latencies.append(time.monotonic() - started)

    print(
        f"REST move → board: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {REST_MOVES} moves"
    )
    assert max(latencies) < LIVE_DEADLINE, latencies
    board_page.assert_stayed_offline()


async def test_leads_created_renamed_and_assigned_by_another_client_update_their_cards(
    board_page: BoardPage, deployment: Deployment
) -> None:
    page = board_page.page
    await open_board(page, deployment.board, deployment)
    await until_live(page)
    key, tenant = deployment.tenant.write_key, deployment.tenant
    first_stage = str(tenant.stage_ids[0])

    status, body, _ = await deployment.api.rest(
        "POST", "/v1/leads", key, json={"businessName": "Board Bakery", "requestedAmount": "12500"}
    )
    assert status == 201, body
    lead_id = body["data"]["id"]
    card = f".column[data-stage-id='{first_stage}'] .card[data-lead-id='{lead_id}']"
    await page.wait_for_selector(card)
    assert await page.text_content(f"{card} .name") == "Board Bakery"
    assert await page.text_content(f"{card} .amount") == "$12,500"
    assert await page.text_content(f"{card} .advisor") == "Unassigned"

    status, body, _ = await deployment.api.rest(
        "PATCH", f"/v1/leads/{lead_id}", key, json={"businessName": "Board Bakery & Sons"}
    )
    assert status == 200, body
    await page.wait_for_function(
        "s => document.querySelector(s)?.textContent === 'Board Bakery & Sons'",
        arg=f"{card} .name",
    )
    advisor = str(tenant.advisor_ids[0])
    status, body, _ = await deployment.api.rest(
        "POST", f"/v1/leads/{lead_id}/assign", key, json={"advisorId": advisor}
    )
    assert status == 200, body
    name = body["data"]["attributes"]["primaryAdvisorName"]
    await page.wait_for_function(
        "([s, name]) => document.querySelector(s)?.textContent === name",
        arg=[f"{card} .advisor", name],
    )
    board_page.assert_stayed_offline()


async def test_a_move_picked_on_the_board_is_visible_through_rest(
    board_page: BoardPage, deployment: Deployment
) -> None:
    page = board_page.page
    await open_board(page, deployment.board, deployment)
    await until_live(page)
    card = await some_card(page, last=True)
    target = another_stage(deployment, card["selected"], step=2)

    def is_move(request: Request) -> bool:
        return request.method == "POST" and "moveLead" in (request.post_data or "")

    async with page.expect_request(is_move) as sent:
        await page.select_option(f".card[data-lead-id='{card['id']}'] select", target)
    request = await sent.value
    response = await request.response()
    assert response is not None
    assert response.status == 200, await response.text()
    body = await response.json()

    assert "errors" not in body, body
    assert await stage_through_rest(deployment, card["id"]) == target
    await until_in_column(page, card["id"], target)
    # One idempotency key per pick: a retried request can never move the lead twice.
    variables = json.loads(request.post_data or "{}")["variables"]
    assert variables["key"] and variables["key"] != card["id"]
    board_page.assert_stayed_offline()


async def test_an_origin_not_on_the_list_gets_neither_http_nor_a_websocket(
    board_page: BoardPage, deployment: Deployment
) -> None:
    page = board_page.page
    await open_board(page, deployment.stranger, deployment)
    await page.wait_for_function(
        """() => { const text = document.getElementById('error').textContent;
                   return text.includes('Cannot reach the gateway')
                       && text.includes('Live updates unavailable'); }"""
    )

    assert await page.locator(".card").count() == 0
    assert await page.get_attribute("body", "data-state") == "error"
    assert any("blocked by CORS policy" in line for line in board_page.console), board_page.console
    assert any(
        "WebSocket" in line and "Unexpected response code: 403" in line
        for line in board_page.console
    ), board_page.console
    # The same refusals, seen by a client that is not a browser sending that Origin.
    session = deployment.api.session
    preflight = {
        "Origin": deployment.stranger,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with session.options(f"{deployment.gateway}/graphql", headers=preflight) as resp:
        assert resp.status == 403
        assert "Access-Control-Allow-Origin" not in resp.headers
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(
            f"{deployment.gateway}/graphql",
            protocols=["graphql-transport-ws"],
            headers={"Origin": deployment.stranger, **bearer(deployment.token)},
        )
    assert refused.value.status == 403
    board_page.assert_stayed_offline()


@dataclass
class ProxiedSocket:
    """One of the page's WebSockets, relayed to the gateway by the test."""

    opened: float
    page_side: WebSocketRoute
    server_side: WebSocketRoute
    sent: list[dict[str, Any]] = field(default_factory=list)  # the page's frames

    def subscribe(self) -> dict[str, Any] | None:
        return next((f for f in self.sent if f.get("type") == "subscribe"), None)


async def test_after_a_dropped_websocket_the_board_resumes_after_the_last_event_it_saw(
    board_page: BoardPage, deployment: Deployment
) -> None:
    page = board_page.page
    sockets: list[ProxiedSocket] = []

    def relay(route: WebSocketRoute) -> None:
        socket = ProxiedSocket(time.monotonic(), route, route.connect_to_server())

        def from_page(message: str | bytes) -> None:
            socket.sent.append(json.loads(message))
            socket.server_side.send(message)

        route.on_message(from_page)
        sockets.append(socket)

    ws_url = deployment.gateway.replace("http://", "ws://") + "/graphql"
    await page.context.route_web_socket(ws_url, relay)
    await open_board(page, deployment.board, deployment)
    await until_live(page)
    lead_id = (await some_card(page))["id"]
    stage_id = await stage_through_rest(deployment, lead_id)
    seen_stage, missed_stage = another_stage(deployment, stage_id), stage_id
    await rest_move(deployment, lead_id, seen_stage)
    await until_in_column(page, lead_id, seen_stage)
    last_seen = await last_event_id(deployment, lead_id)

    # The network drops the socket; the board retries after a second, and meanwhile the lead
    # moves again.
    await sockets[0].page_side.close(code=1012, reason="dropped by the test")
    await sockets[0].server_side.close()
    await rest_move(deployment, lead_id, missed_stage)
    moved_at = time.monotonic()
    await until_in_column(page, lead_id, missed_stage)

    assert len(sockets) == 2
    assert sockets[1].opened > moved_at, "the board reconnected before the missed move"
    resumed = sockets[1].subscribe()
    assert resumed is not None
    assert resumed["payload"]["variables"] == {"after": last_seen}
    assert await page.locator("#error").is_hidden()
    board_page.assert_stayed_offline()
