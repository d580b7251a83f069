"""The strawberry schema: the source of schema.graphql."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from leadgate.graphql.mutation import Mutation
from leadgate.graphql.query import Query
from leadgate.graphql.scalars import DateTime
from leadgate.graphql.subscription import Subscription
from leadgate.graphql.webhooks import WebhookMutation, WebhookQuery

# Deep enough for any real lead query, shallow enough to stop abusive nesting.
MAX_DEPTH: Final = 10
MAX_ALIASES: Final = 30


class LeadgateSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Client errors are answered, not logged as failures; unexpected ones are logged
        # (once, with the request id) where they are formatted.
        del errors, execution_context


def build_schema() -> strawberry.Schema:
    # Factories: an extension is made per request; the parse and validation caches live at
    # module level in strawberry and so outlive each request.
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
    ]
    return LeadgateSchema(
        query=merge_types("Query", (Query, WebhookQuery)),
        mutation=merge_types("Mutation", (Mutation, WebhookMutation)),
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={datetime: DateTime}),
        extensions=extensions,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
