"""One HTTP session to the gateway: credentials, JSON, idempotency keys and retries.

Every write gets an `Idempotency-Key` (a uuid4 unless the caller gives one) that stays the
same across that call's retries: whichever attempt reached the server, the write happens once
and a retry gets its result (REST replays it with `Idempotent-Replayed: true`).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp

from leadgate.client.errors import (
    LeadgateError,
    TransportError,
    graphql_error,
    rest_error,
)
from leadgate.client.retry import RETRYABLE_CODES, RetryPolicy, parse_retry_after

USER_AGENT: Final = "leadgate-python"
# A document whose (first) operation is a mutation: retried on 503 only with a key.
_MUTATION: Final = re.compile(r"^\s*(?:#[^\n]*\n\s*)*mutation\b")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def replayed(self) -> bool:
        return self.headers.get("Idempotent-Replayed") == "true"


def bearer(api_key: str | None, token: str | None) -> str:
    if (api_key is None) == (token is None):
        raise ValueError("give exactly one of api_key= (lw_live_…) or token= (a JWT)")
    return f"Bearer {api_key if api_key is not None else token}"


class Transport:
    """The aiohttp session of one AsyncClient, opened on first use (inside its event loop)."""

    def __init__(
        self,
        base_url: str,
        authorization: str,
        *,
        retry: RetryPolicy,
        timeout: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.authorization = authorization
        self.retry = retry
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Authorization": self.authorization, "User-Agent": USER_AGENT},
            )
        return self._session

    @property
    def websocket_url(self) -> str:
        return re.sub(r"^http", "ws", self.base_url) + "/graphql"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def rest(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        write: bool = False,
        idempotency_key: str | None = None,
    ) -> Response:
        """A `/v1` request; an error envelope raises its LeadgateError."""
        headers: dict[str, str] = {}
        if write:
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        return await self._with_retries(
            lambda: self._send(method, f"/v1{path}", params=params, body=body, headers=headers),
            rest_error,
        )

    async def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None,
        *,
        operation_name: str | None = None,
        idempotency_key: str | None = None,
    ) -> Response:
        """POST /graphql; a response with errors raises (the first error's class)."""
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = dict(variables)
        if operation_name is not None:
            payload["operationName"] = operation_name
        headers = {"Accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        # Without a key a mutation may have run before a 503: only a 429 (refused before
        # anything ran) is safe to retry.
        safe = idempotency_key is not None or not _MUTATION.match(query)

        def error(
            status: int, body: Any, *, request_id: str | None, retry_after: float | None
        ) -> LeadgateError:
            errors = body.get("errors") if isinstance(body, Mapping) else None
            return graphql_error(
                status,
                errors if isinstance(errors, list) else [],
                body.get("data") if isinstance(body, Mapping) else None,
                request_id=request_id,
                retry_after=retry_after,
            )

        return await self._with_retries(
            lambda: self._send("POST", "/graphql", body=payload, headers=headers),
            error,
            failed=_graphql_failed,
            safe=safe,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str],
    ) -> Response:
        async with self.session.request(
            method,
            self.base_url + path,
            params=params,
            json=body,
            headers=headers,
            allow_redirects=False,
        ) as resp:
            raw = await resp.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return Response(resp.status, parsed, dict(resp.headers))

    async def _with_retries(
        self,
        attempt_once: Callable[[], Awaitable[Response]],
        to_error: _ToError,
        *,
        failed: Callable[[Response], bool] | None = None,
        safe: bool = True,
    ) -> Response:
        """`attempt_once` until it succeeds, raises what may not be retried, or runs out of
        attempts. `safe`: a retry cannot repeat a write (a read, or a write with its key)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await attempt_once()
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                error: LeadgateError = TransportError(
                    "TRANSPORT", f"{type(exc).__name__}: {exc}".rstrip(": ")
                )
                retryable = safe
            else:
                if not (failed or _rest_failed)(response):
                    return response
                error = to_error(
                    response.status,
                    response.body,
                    request_id=response.headers.get("X-Request-Id"),
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
                # A 429 is refused before anything runs: retrying it never repeats a write.
                retryable = error.code in RETRYABLE_CODES and (safe or error.code == "RATE_LIMITED")
            delay = self.retry.delay(attempt, error.retry_after) if retryable else None
            if delay is None:
                raise error
            await asyncio.sleep(delay)


class _ToError(Protocol):
    def __call__(
        self, status: int, body: Any, *, request_id: str | None, retry_after: float | None
    ) -> LeadgateError: ...


def _rest_failed(response: Response) -> bool:
    return response.status >= 400


def _graphql_failed(response: Response) -> bool:
    body = response.body
    return response.status >= 400 or not isinstance(body, Mapping) or bool(body.get("errors"))
