"""The lead field table: every lead field declared once (issue 9 #1).

`Lead` below is both the domain record and the table: each attribute is one field, named after
its SQL column, typed with its Python type, and annotated with a `LeadField` saying how the
APIs show it and accept it. Everything else is derived from `LEAD_FIELDS`: the SQL column lists
and row mapping (store/leads.py, store/lead_writes.py), the REST attributes
(domain/representation.py), which validator checks which input (domain/validation.py), the
demo data COPY columns (store/leads.py), and the GraphQL `Lead` type and its create/update
inputs (graphql/types.py, graphql/inputs.py). tests/test_lead_field_table.py holds the table
against the migrated `leads` table and schema.graphql.

Adding a field is one line here and one migration. A field that needs more than a value (the
stage, the advisor) is declared as a relation: its column is listed here, and its GraphQL
resolver, REST rendering and write path stay hand-written beside the code that needs them.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID


class LeadSource(enum.StrEnum):
    MANUAL = "manual"
    CSV_IMPORT = "csv_import"
    API = "api"
    WEB_FORM = "web_form"
    REFERRAL = "referral"
    DIALER = "dialer"


class LeadPriority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Rule(enum.Enum):
    """How domain/validation.py checks an input (it dispatches on this)."""

    TEXT = "text"  # trimmed plain text up to max_length; empty clears
    BUSINESS_NAME = "business_name"  # 1-max_length characters, no HTML; null clears
    EMAIL = "email"
    AMOUNT = "amount"  # a non-negative decimal string, stored as numeric
    CHOICE = "choice"  # a value of the field's enum
    TAGS = "tags"
    OBJECT = "object"  # a JSON object (customFields)
    EXTERNAL_IDS = "external_ids"  # {system: id}, unique per organization (issue 12 #4)
    REFERENCE = "reference"  # a UUID the database must confirm (in the caller's organization)


@dataclass(frozen=True, slots=True)
class LeadField:
    """One field's declaration; the column name and Python type come from the attribute.

    `api` is the GraphQL field name and, unless `rest` says otherwise, the REST attribute;
    None keeps the column internal. `create`/`update`: the inputs accept it (under `input`
    when that differs from `api`); `fixed` is why an update refuses a create-only field.
    `default` is what a create stores when the field is left out (None: the column default).
    `relation`: a hand-written resolver and REST rendering show it, not its value.
    `sql`: the column's type when it is not the Python type's usual one.
    `identifier`: a text id that is not a UUID, shown as an ID all the same.
    `personal`: personal data, scrubbed from the lead's events when it is erased.
    """

    api: str | None
    rule: Rule | None = None
    max_length: int | None = None
    create: bool = False
    update: bool = False
    input: str | None = None
    input_description: str | None = None
    fixed: str | None = None
    default: object = None
    description: str | None = None
    rest: str | None = None
    relation: bool = False
    sql: str | None = None
    identifier: bool = False
    # Personal data: what eraseLead removes from the lead's past events (issue 12 #2).
    personal: bool = False


def _text(api: str, max_length: int, *, personal: bool = False) -> LeadField:
    """The common case: optional plain text that create and update both take."""
    return LeadField(api, Rule.TEXT, max_length, create=True, update=True, personal=personal)


_AMOUNT: Final = "Numeric string, as in the spec"
_FIXED: Final = "{} is set when a lead is created and cannot change"


@dataclass(frozen=True, slots=True)
class Lead:
    """A lead as stored. One attribute per column, in the column order the APIs show."""

    id: Annotated[UUID, LeadField("id")]
    organization_id: Annotated[UUID, LeadField(None)]
    business_name: Annotated[
        str | None,
        LeadField(
            "businessName",
            rule=Rule.BUSINESS_NAME,
            max_length=255,
            create=True,
            update=True,
            personal=True,
        ),
    ]
    contact_first_name: Annotated[str | None, _text("contactFirstName", 100, personal=True)]
    contact_last_name: Annotated[str | None, _text("contactLastName", 100, personal=True)]
    email: Annotated[
        str | None,
        LeadField(
            "email", rule=Rule.EMAIL, max_length=320, create=True, update=True, personal=True
        ),
    ]
    # A do-not-call lead keeps its phone: isDoNotCall is the flag that goes with it.
    phone: Annotated[str | None, _text("phone", 20, personal=True)]
    industry: Annotated[str | None, _text("industry", 100)]
    monthly_revenue: Annotated[
        str | None,
        LeadField(
            "monthlyRevenue",
            rule=Rule.AMOUNT,
            create=True,
            update=True,
            description=_AMOUNT,
            sql="numeric",
        ),
    ]
    requested_amount: Annotated[
        str | None,
        LeadField(
            "requestedAmount",
            rule=Rule.AMOUNT,
            create=True,
            update=True,
            description=_AMOUNT,
            sql="numeric",
        ),
    ]
    source: Annotated[
        LeadSource,
        LeadField(
            "source",
            rule=Rule.CHOICE,
            create=True,
            fixed=_FIXED.format("source"),
            default=LeadSource.MANUAL,
            input_description="Defaults to MANUAL",
        ),
    ]
    priority: Annotated[
        LeadPriority,
        LeadField(
            "priority",
            rule=Rule.CHOICE,
            create=True,
            update=True,
            default=LeadPriority.NORMAL,
            input_description="Defaults to NORMAL",
        ),
    ]
    is_do_not_call: Annotated[bool, LeadField("isDoNotCall")]
    dnc_reason: Annotated[str | None, LeadField("dncReason", personal=True)]
    dnc_at: Annotated[datetime | None, LeadField("dncAt")]
    tags: Annotated[
        list[str], LeadField("tags", rule=Rule.TAGS, create=True, update=True, default=[])
    ]
    custom_fields: Annotated[
        dict[str, Any],
        LeadField(
            "customFields",
            rule=Rule.OBJECT,
            create=True,
            update=True,
            default={},
            personal=True,
        ),
    ]
    external_ids: Annotated[
        dict[str, Any],
        LeadField(
            "externalIds",
            rule=Rule.EXTERNAL_IDS,
            create=True,
            update=True,
            default={},
            description='Ids in other systems, {"hubspot": "123"}: one lead per system and id',
        ),
    ]
    lead_score: Annotated[int | None, LeadField("leadScore")]
    stage_id: Annotated[
        UUID,
        LeadField(
            "stage",
            relation=True,
            rule=Rule.REFERENCE,
            create=True,
            input="stageId",
            input_description="Defaults to the first stage",
            fixed="use moveLead to change the stage",
        ),
    ]
    primary_advisor_id: Annotated[
        UUID | None,
        LeadField(
            "primaryAdvisor",
            relation=True,
            rule=Rule.REFERENCE,
            create=True,
            input="assignToAdvisorId",
            fixed="use assignLead to change the advisor",
        ),
    ]
    contact_id: Annotated[
        UUID | None,
        LeadField("contactId", rule=Rule.REFERENCE, create=True, fixed=_FIXED.format("contactId")),
    ]
    last_contacted_at: Annotated[datetime | None, LeadField("lastContactedAt")]
    stage_changed_at: Annotated[datetime, LeadField("stageChangedAt")]
    converted_at: Annotated[datetime | None, LeadField("convertedAt")]
    converted_account_id: Annotated[UUID | None, LeadField("convertedAccountId")]
    converted_contact_id: Annotated[UUID | None, LeadField("convertedContactId")]
    import_job_id: Annotated[UUID | None, LeadField("importJobId")]
    # Set by mergeLeads on the duplicate: the lead it was merged into (issue 12 #5).
    merged_into: Annotated[
        UUID | None, LeadField("mergedInto", description="The lead this one was merged into")
    ]
    # The creating actor's id: an API key's UUID or a user's `sub` (any string).
    created_by: Annotated[str | None, LeadField("createdBy", identifier=True)]
    created_at: Annotated[datetime, LeadField("createdAt")]
    updated_at: Annotated[datetime, LeadField("updatedAt")]
    # Hidden from lists, search and subscriptions while set (archiveLead; restoreLead clears).
    archived_at: Annotated[
        datetime | None, LeadField("archivedAt", description="When the lead was archived")
    ]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A declared field with what its attribute says: column, Python type, nullability."""

    column: str
    python_type: Any  # the type without `| None`: str, int, UUID, list[str], LeadSource...
    nullable: bool
    decl: LeadField

    @property
    def api(self) -> str | None:
        return self.decl.api

    @property
    def input_name(self) -> str:
        name = self.decl.input or self.decl.api
        if name is None:
            raise ValueError(f"{self.column} is internal: no input takes it")
        return name

    @property
    def rest_name(self) -> str | None:
        return self.decl.rest or self.decl.api

    @property
    def exposed(self) -> bool:
        """Shown as a plain value (not internal, not a relation)."""
        return self.decl.api is not None and not self.decl.relation

    @property
    def sql_type(self) -> str:
        """PostgreSQL's name for the column type (`udt_name` in information_schema.columns)."""
        if self.decl.sql is not None:
            return self.decl.sql
        return _SQL_TYPES.get(self.python_type, "text")

    @property
    def enum(self) -> type[enum.Enum] | None:
        kind = self.python_type
        return kind if isinstance(kind, type) and issubclass(kind, enum.Enum) else None


# Enums are stored as text (with a CHECK); everything else by its Python type.
_SQL_TYPES: Final[dict[Any, str]] = {
    str: "text",
    int: "int4",
    bool: "bool",
    UUID: "uuid",
    datetime: "timestamptz",
    list[str]: "_text",
    dict[str, Any]: "jsonb",
}


def _spec(column: str, hint: Any) -> FieldSpec:
    if typing.get_origin(hint) is not Annotated:
        raise TypeError(f"Lead.{column} has no LeadField declaration")
    python_type, *extras = typing.get_args(hint)
    decls = [e for e in extras if isinstance(e, LeadField)]
    if len(decls) != 1:
        raise TypeError(f"Lead.{column} needs exactly one LeadField declaration")
    nullable = False
    if isinstance(python_type, types.UnionType):
        parts = [p for p in typing.get_args(python_type) if p is not type(None)]
        nullable = len(parts) < len(typing.get_args(python_type))
        (python_type,) = parts
    return FieldSpec(column=column, python_type=python_type, nullable=nullable, decl=decls[0])


LEAD_FIELDS: Final = tuple(
    _spec(column, hint) for column, hint in typing.get_type_hints(Lead, include_extras=True).items()
)
# The fields a create or an update takes as values (references are checked apart).
VALUE_INPUTS: Final = tuple(
    f for f in LEAD_FIELDS if (f.decl.create or f.decl.update) and f.decl.rule is not Rule.REFERENCE
)
# What eraseLead scrubs from a lead's past events, by REST attribute name.
PERSONAL_ATTRIBUTES: Final = tuple(
    name for f in LEAD_FIELDS if f.decl.personal and (name := f.rest_name) is not None
)
# The ids a create names, which the database must confirm.
REFERENCE_INPUTS: Final = tuple(
    f for f in LEAD_FIELDS if f.decl.create and f.decl.rule is Rule.REFERENCE
)
# As the inputs list them: what an update takes, then what only a create takes.
UPDATE_INPUTS: Final = tuple(f for f in LEAD_FIELDS if f.decl.update)
CREATE_INPUTS: Final = UPDATE_INPUTS + tuple(
    f for f in LEAD_FIELDS if f.decl.create and not f.decl.update
)


@dataclass(frozen=True, slots=True)
class Relation:
    """A `Lead` field with a hand-written resolver (graphql/types.py), not a column's value."""

    api: str
    # The column it follows (its REST rendering is hand-written too); None: it reads another
    # table.
    column: str | None


RELATIONS: Final = tuple(
    Relation(f.api, f.column) for f in LEAD_FIELDS if f.decl.relation and f.api is not None
) + (
    # The lead's events (lead_events), newest first.
    Relation("history", None),
)
