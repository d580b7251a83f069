"""The strawberry schema: the source of schema.graphql."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, ParserCache, QueryDepthLimiter, ValidationCache
from strawberry.types import ExecutionContext

from leadgate.graphql.query import Query
from leadgate.graphql.scalars import DateTime

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
    # Instances, not classes: the caches must outlive a single request.
    extensions: list[Any] = [
        ParserCache(maxsize=512),
        ValidationCache(maxsize=512),
        QueryDepthLimiter(max_depth=MAX_DEPTH),
        MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
    ]
    scalars: dict[object, Any] = {datetime: DateTime}
    return LeadgateSchema(query=Query, scalar_overrides=scalars, extensions=extensions)


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
