"""The strawberry schema (the source of schema.graphql), behind the admission gate."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Final

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from leadgate import request_context
from leadgate.db.failures import unavailable
from leadgate.domain.errors import AppError, RateLimited
from leadgate.graphql.codegen import Fallback
from leadgate.graphql.compiled import Plan, PlanCache
from leadgate.graphql.errors import annotate
from leadgate.graphql.gate import Admitted, Gate, Limits, Refused
from leadgate.graphql.mutation import Mutation
from leadgate.graphql.query import Query
from leadgate.graphql.scalars import DateTime
from leadgate.graphql.subscription import Subscription
from leadgate.graphql.webhooks import WebhookMutation, WebhookQuery
from leadgate.services.rate_limits import RateLimiter

log = logging.getLogger(__name__)

_ALL_OPERATIONS: Final = (OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION)
# Documents whose fallback was logged; forgotten when full (a log line again, not a leak).
_LOGGED_FALLBACKS: Final = 1024


class RefusedResult(ExecutionResult):
    """A request refused before execution: errors only, no `data` entry."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(data=None, errors=refused.errors)
        self.refused = refused


class LeadgateSchema(strawberry.Schema):
    """Strawberry's schema behind the gate (graphql/gate.py: every limit and check before
    any resolver runs), running queries through compiled plans where it can."""

    def __init__(
        self,
        *args: Any,
        limits: Limits,
        compiled: bool = True,
        rates: RateLimiter | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.gate = Gate(self._schema, limits)
        self.rates = rates
        self._plans = PlanCache(self, ()) if compiled else None
        # Operations a plan answered, and plans that had to hand over to strawberry (a
        # `Fallback` while running): metrics (leadgate/metrics.py).
        self.plan_hits = 0
        self.fallbacks = 0
        self._logged_fallbacks: set[str] = set()

    async def execute(  # noqa: PLR0917 - strawberry's signature
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        allowed = tuple(allowed_operation_types or _ALL_OPERATIONS)
        try:
            admitted = self.gate.admit(query, operation_name, variable_values, _names(allowed))
        except Refused as refused:
            _report_cost(context_value, refused.cost)
            return RefusedResult(refused)
        _report_cost(context_value, admitted.cost)
        _note_operation(admitted)
        over = await self._debit(context_value, admitted)
        if over is not None:
            return RefusedResult(over)
        plan = self.plan(query, operation_name) if query else None
        if plan is not None and root_value is None:
            # Only the plan's own Fallback is caught: any other exception is a bug in the plan,
            # answered as INTERNAL by the transport rather than hidden by a silent rerun.
            try:
                data = await plan.run(context_value, variable_values)
            except Fallback as fallback:
                cause = fallback.__cause__
                if isinstance(cause, Exception) and unavailable(cause) is not None:
                    # Never run a query twice against a database that is failing.
                    error = GraphQLError(str(cause), original_error=cause)
                    annotate(error, getattr(context_value, "request_id", ""))
                    return ExecutionResult(data=None, errors=[error])
                self._fell_back(query, fallback)
            else:
                self.plan_hits += 1
                return ExecutionResult(data=data, errors=None)
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed,
            operation_extensions,
        )

    async def stream(  # noqa: PLR0917 - strawberry's signature
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        allowed = tuple(allowed_operation_types or _ALL_OPERATIONS)
        try:
            admitted = self.gate.admit(query, operation_name, variable_values, _names(allowed))
        except Refused as refused:
            return _refused_stream(refused)
        _note_operation(admitted)
        over = await self._debit(context_value, admitted)
        if over is not None:
            return _refused_stream(over)
        plan = self.plan(query, operation_name) if query else None
        if (
            plan is not None
            and root_value is None
            and OperationType.SUBSCRIPTION in allowed
            and plan.operation.operation.value == "subscription"
        ):
            try:
                source, complete = plan.open_stream(context_value, variable_values)
            except Fallback as fallback:  # strawberry opens it and reports the errors
                self._fell_back(query, fallback)
            else:
                self.plan_hits += 1
                return self._compiled_stream(source, complete, context_value)
        return await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed,
        )

    async def _compiled_stream(
        self,
        source: AsyncIterator[Any],
        complete: Callable[[Any], Awaitable[dict[str, Any]]],
        context: Any,
    ) -> AsyncGenerator[ExecutionResult, None]:
        try:
            async for event in source:
                yield ExecutionResult(data=await complete(event), errors=None)
        except Exception as exc:  # noqa: BLE001 - answered as strawberry answers it
            # As graphql-core reports a source stream that fails: one result with the error.
            error = GraphQLError(str(exc), original_error=exc)
            annotate(error, getattr(context, "request_id", ""))
            yield ExecutionResult(data=None, errors=[error])
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _debit(self, context: Any, admitted: Admitted) -> Refused | None:
        """Debit the operation's cost from its caller's rate-limit buckets before anything
        runs (services/rate_limits.py); the refusal when over the limit. An unauthenticated
        caller is refused by its resolvers, not here."""
        caller = getattr(context, "caller", None)
        if self.rates is None or caller is None:
            return None
        try:
            verdict = await self.rates.debit(caller, admitted.cost["requested"])
        except AppError as cause:  # a cost no bucket could ever hold
            return Refused(cause, cost=admitted.cost)
        if verdict is None or verdict.allowed:
            return None
        return _rate_limited(verdict.refusal())

    def _fell_back(self, query: str | None, exc: Exception) -> None:
        self.fallbacks += 1
        # The reason is what made the plan fall back, when it was an exception.
        if isinstance(exc, Fallback) and isinstance(exc.__cause__, Exception):
            exc = exc.__cause__
        # Once per document: a fallback repeats on every request of that document.
        digest = hashlib.sha256((query or "").encode()).hexdigest()[:16]
        if digest in self._logged_fallbacks:
            return
        if len(self._logged_fallbacks) >= _LOGGED_FALLBACKS:
            self._logged_fallbacks.clear()
        self._logged_fallbacks.add(digest)
        log.warning(
            "compiled plan fell back to strawberry for document %s: %s: %.200s",
            digest,
            type(exc).__name__,
            exc,
        )

    def plan(self, query: str, operation_name: str | None) -> Plan | None:
        """The compiled plan of a document, or None when strawberry must run it."""
        return self._plans.get(query, operation_name) if self._plans is not None else None

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Every error gets its code here, whatever transport then sends it; only unexpected
        # ones are logged (with the request id), client errors are answered, not logged.
        context = execution_context.context if execution_context else None
        request_id = getattr(context, "request_id", "")
        for error in errors:
            annotate(error, request_id)


async def _refused_stream(refused: Refused) -> AsyncGenerator[ExecutionResult, None]:
    yield PreExecutionError(data=None, errors=refused.errors)


def _rate_limited(cause: RateLimited) -> Refused:
    extensions = {"code": cause.code, "retryAfter": cause.retry_after}
    error = GraphQLError(cause.message, original_error=cause, extensions=extensions)
    refused = Refused(cause, [error])
    # Not the document's fault: 429 whatever media type the client accepts.
    refused.of_document = False
    return refused


def _note_operation(admitted: Admitted) -> None:
    operation = admitted.operation
    name = operation.name.value if operation.name is not None else None
    request_context.note_operation(operation.operation.value, name)


def _names(types: Iterable[OperationType]) -> frozenset[str]:
    return frozenset(t.value for t in types)


def _report_cost(context: Any, cost: dict[str, int] | None) -> None:
    """`extensions.cost` of the response (Shopify's and GitHub's way of showing it)."""
    extensions = getattr(context, "response_extensions", None)
    if cost is not None and extensions is not None:
        extensions["cost"] = cost


def build_schema(
    *, limits: Limits | None = None, compiled: bool = True, rates: RateLimiter | None = None
) -> LeadgateSchema:
    # Factories: an extension is made per request; the parse and validation caches live at
    # module level in strawberry and so outlive each request.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ]
    return LeadgateSchema(
        query=merge_types("Query", (Query, WebhookQuery)),
        mutation=merge_types("Mutation", (Mutation, WebhookMutation)),
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={datetime: DateTime}),
        extensions=extensions,
        limits=limits or Limits(),
        compiled=compiled,
        rates=rates,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
