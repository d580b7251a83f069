"""GraphiQL in a real browser: the page is public, loads with no internet, and runs queries
with the key from its headers editor.

Every request the page makes to anything but loopback is blocked and recorded, so a page that
still reached for a CDN fails here instead of showing operators a blank screen.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, Route, async_playwright

from leadgate.app import create_app
from leadgate.config import Settings
from tests.support import Api, Tenant

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
DEFAULT_STAGE_KEYS = ["new_lead", "contacted", "qualified", "application", "funded", "lost"]
STAGES_QUERY = "{ stages { stageKey } }"

# GraphiQL 3.8.3 keeps each editor's CodeMirror instance on its DOM node.
QUERY_CM = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
RESULT_CM = "document.querySelector('.graphiql-response .CodeMirror').CodeMirror"
HEADERS_CM = (
    "document.querySelectorAll('.graphiql-editor-tool .CodeMirror')[1].CodeMirror"  # [vars, hdrs]
)


@dataclass
class OfflinePage:
    """A page whose non-loopback requests are blocked and remembered, as are its JS errors."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

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
async def offline_page(browser: Browser) -> AsyncIterator[OfflinePage]:
    context = await browser.new_context()  # fresh localStorage: no remembered headers
    context.set_default_timeout(15_000)
    page = OfflinePage(page=await context.new_page())

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            await route.continue_()
        else:
            page.blocked.append(route.request.url)
            await route.abort()

    await context.route("**/*", loopback_only)
    page.page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    await context.close()


@pytest.fixture
async def server_with_graphiql_key(
    settings: Settings, pool: asyncpg.Pool, tenant: Tenant
) -> AsyncIterator[TestServer]:
    """The gateway started with GRAPHIQL's key set to the tenant's read key."""
    app = create_app(dataclasses.replace(settings, graphiql_api_key=tenant.read_key))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def open_graphiql(page: Page, server: TestServer) -> None:
    response = await page.goto(str(server.make_url("/graphql")))
    assert response is not None
    assert response.status == 200, f"GET /graphql answered {response.status}"
    await page.wait_for_selector(".graphiql-container .graphiql-query-editor .CodeMirror")
    await page.wait_for_function(f"() => !!{QUERY_CM} && !!{HEADERS_CM}")


async def headers_in_editor(page: Page) -> Any:
    return json.loads(await page.evaluate(f"() => {HEADERS_CM}.getValue()"))


async def run_query(page: Page, query: str, *, expect: str) -> Any:
    """Type `query`, press the run button, and return the parsed result once it shows `expect`."""
    await page.evaluate(f"q => {QUERY_CM}.setValue(q)", query)
    # GraphiQL parses the editor's text asynchronously; run only once it has the new document.
    await page.wait_for_function(
        f"() => {QUERY_CM}.documentAST?.loc?.source?.body === {QUERY_CM}.getValue()"
    )
    await page.click(".graphiql-execute-button")
    await page.wait_for_function(
        f"e => ({RESULT_CM}.getValue() || '').includes(e)", arg=expect, timeout=10_000
    )
    return json.loads(await page.evaluate(f"() => {RESULT_CM}.getValue()"))


async def test_the_graphiql_page_is_public(api: Api) -> None:
    async with api.session.get(f"{api.base}/graphql", headers={"Accept": "text/html"}) as resp:
        status, content_type, text = resp.status, resp.content_type, await resp.text()

    assert status == 200, text
    assert content_type == "text/html"
    assert "<title>leadgate GraphiQL</title>" in text


async def test_without_a_configured_key_the_headers_editor_shows_a_placeholder(
    offline_page: OfflinePage, server: TestServer
) -> None:
    await open_graphiql(offline_page.page, server)

    assert await headers_in_editor(offline_page.page) == {"Authorization": "Bearer lw_live_..."}
    offline_page.assert_stayed_offline()


async def test_graphiql_runs_a_query_with_the_key_typed_into_the_headers_editor(
    offline_page: OfflinePage, server: TestServer, tenant: Tenant
) -> None:
    page = offline_page.page
    await open_graphiql(page, server)

    headers = json.dumps({"Authorization": f"Bearer {tenant.read_key}"})
    await page.evaluate(f"h => {HEADERS_CM}.setValue(h)", headers)
    result = await run_query(page, STAGES_QUERY, expect="new_lead")

    assert [s["stageKey"] for s in result["data"]["stages"]] == DEFAULT_STAGE_KEYS
    offline_page.assert_stayed_offline()


async def test_graphiql_prefills_the_configured_key_and_runs_queries_with_it(
    offline_page: OfflinePage, server_with_graphiql_key: TestServer, tenant: Tenant
) -> None:
    page = offline_page.page
    await open_graphiql(page, server_with_graphiql_key)

    assert await headers_in_editor(page) == {"Authorization": f"Bearer {tenant.read_key}"}
    result = await run_query(page, STAGES_QUERY, expect="new_lead")

    assert [s["stageKey"] for s in result["data"]["stages"]] == DEFAULT_STAGE_KEYS
    offline_page.assert_stayed_offline()
