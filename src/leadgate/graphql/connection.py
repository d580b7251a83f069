"""The Relay connection shape of `leadsConnection` (issue 11 #2): edges with opaque cursors,
pageInfo, totalCount. Thin views over a keyset slice (domain/paging.py)."""

from __future__ import annotations

import strawberry

from leadgate.domain import paging
from leadgate.graphql.types import Lead, exactness_description


@strawberry.type(description="Where a slice of a connection sits in its order (Relay).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class LeadEdge:
    cursor: str = strawberry.field(
        description="Opaque; pass it as `after` or `before` to continue from this lead"
    )
    node: Lead


@strawberry.type(
    description="Leads in keyset order: a scan by cursor sees every lead that existed when it "
    "started exactly once, however many are written meanwhile."
)
class LeadConnection:
    edges: list[LeadEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(
        description="Every lead the criteria admit (updatedSince included), not just this "
        "slice; see totalIsExact"
    )
    total_is_exact: bool = strawberry.field(description=exactness_description("totalCount"))

    @classmethod
    def from_model(cls, page: paging.KeysetPage) -> LeadConnection:
        edges = [
            LeadEdge(cursor=page.cursor(record), node=Lead.from_record(record))
            for record in page.records
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=page.total,
            total_is_exact=page.total_is_exact,
        )
