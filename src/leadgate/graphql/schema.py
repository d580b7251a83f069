"""The strawberry schema: the source of schema.graphql."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Final

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    ParserCache,
    SchemaExtension,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from leadgate.graphql.compiled import Plan, PlanCache
from leadgate.graphql.errors import annotate
from leadgate.graphql.mutation import Mutation
from leadgate.graphql.query import Query
from leadgate.graphql.scalars import DateTime
from leadgate.graphql.subscription import Subscription
from leadgate.graphql.webhooks import WebhookMutation, WebhookQuery

# Deep enough for any real lead query, shallow enough to stop abusive nesting.
MAX_DEPTH: Final = 10
MAX_ALIASES: Final = 30


class LeadgateSchema(strawberry.Schema):
    """Strawberry's schema, running queries through compiled plans where it can."""

    def __init__(self, *args: Any, compiled: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans = PlanCache(self, tuple(_LIMIT_RULES)) if compiled else None
        # Plans that had to hand over to strawberry (an error while running): a metric.
        self.fallbacks = 0

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
        plan = self.plan(query, operation_name) if query else None
        if plan is not None and root_value is None:
            try:
                return ExecutionResult(
                    data=await plan.run(context_value, variable_values), errors=None
                )
            except Exception:  # noqa: BLE001 - strawberry reruns it and reports the errors
                self.fallbacks += 1
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
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
        plan = self.plan(query, operation_name) if query else None
        allowed = allowed_operation_types or ()
        if (
            plan is not None
            and root_value is None
            and OperationType.SUBSCRIPTION in allowed
            and plan.operation.operation.value == "subscription"
        ):
            try:
                source, complete = plan.open_stream(context_value, variable_values)
            except Exception:  # noqa: BLE001 - strawberry reruns it and reports the errors
                self.fallbacks += 1
            else:
                return self._compiled_stream(source, complete, context_value)
        return await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
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


# The limits' rule classes are made once: the validation cache keys on the rule classes, so
# classes made afresh per request (as QueryDepthLimiter(...) would) would defeat it.
_LIMIT_RULES: Final[list[type[ASTValidationRule]]] = [
    query_depth_limiter.create_validator(MAX_DEPTH, should_ignore=None),
    max_aliases.create_validator(MAX_ALIASES),
]


def build_schema(*, compiled: bool = True) -> strawberry.Schema:
    # Factories: an extension is made per request; the parse and validation caches live at
    # module level in strawberry and so outlive each request.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: AddValidationRules(_LIMIT_RULES),
    ]
    return LeadgateSchema(
        query=merge_types("Query", (Query, WebhookQuery)),
        mutation=merge_types("Mutation", (Mutation, WebhookMutation)),
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={datetime: DateTime}),
        extensions=extensions,
        compiled=compiled,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
