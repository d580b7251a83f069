"""Compiled queries: a validated query document becomes a plan that runs the same resolvers
and serialisers as strawberry, without graphql-core's generic per-field machinery.

graphql-core spends most of a list query's CPU on bookkeeping around each of its hundreds of
fields (resolve info, paths, awaitable checks, a task per async field). A plan is made once
per distinct document: the selection flattened per type, each field's resolver (strawberry's
own, with its own argument conversion) or plain attribute, and its output type's serialiser;
graphql/codegen.py then writes it as Python functions that build the response directly.
The schema stays the source of truth, and the plan only covers what it reproduces exactly:
query operations without directives or abstract types. Anything else goes to strawberry's
executor. So does a run that meets what only strawberry renders (a resolver raising, a
non-null field that is null, variables that do not coerce, a value that does not serialise):
the plan raises `Fallback`, chained from the cause, and strawberry produces the normal result
and errors; queries read only, so running one again is harmless. Only `Fallback` is caught:
any other exception is a bug in the plan and surfaces (as an INTERNAL error), never hidden by
a silent rerun.

This module reads strawberry's and graphql-core's internals (argument conversion, field
definitions, variable coercion): pyproject.toml pins both to the tested range, and
tests/test_compiled_differential.py compares the plan with strawberry on generated documents.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    specified_rules,
)
from graphql.error import GraphQLError
from graphql.execution.values import get_variable_values
from strawberry.schema.schema import validate_document
from strawberry.types.field import StrawberryField

from leadgate.graphql.codegen import Fallback, Generated, ResolverInfo, Runner, generate
from leadgate.graphql.encoding import Encoded

MAX_PLANS: Final = 512
MAX_COMPLETED_EVENTS: Final = 256
_DEFINITION: Final = "strawberry-definition"


class NotCompilable(Exception):
    """The document uses something a plan does not reproduce exactly."""


@dataclass(slots=True)
class FieldPlan:
    key: str
    graphql_type: GraphQLOutputType
    definition: GraphQLField | None  # None for __typename
    strawberry_field: StrawberryField | None
    node: FieldNode
    selection: ObjectPlan | None = None
    # Decided once at compile time, so running a plan does no per-value type dispatch:
    attribute: str | None = None  # a plain attribute (no resolver), read as it is
    resolved: bool = False  # a resolver runs (with converted arguments and `info`)


@dataclass(slots=True)
class ObjectPlan:
    type_name: str
    fields: list[FieldPlan] = field(default_factory=list)
    # No resolver anywhere below: completed without waiting, never a Later.
    synchronous: bool = True


@dataclass(slots=True)
class Plan:
    schema: Any  # the strawberry schema (for argument conversion)
    operation: OperationDefinitionNode
    root: ObjectPlan
    code: Generated
    # A subscription's events, completed once per event for every subscriber of this
    # document: fan-out to thousands then costs one completion, not thousands.
    _completed_events: OrderedDict[tuple[Any, str], dict[str, Any]] = field(
        default_factory=OrderedDict
    )
    # Events completed (and encoded) so far: one per event and variables, whatever the
    # number of subscribers.
    completions: int = 0

    def _variables(self, variables: dict[str, Any] | None) -> Any:
        coerced = get_variable_values(
            self.schema._schema, self.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            raise Fallback("variables do not coerce") from coerced[0]
        return coerced

    def _infos(self, context: Any) -> list[ResolverInfo]:
        return [ResolverInfo(context, name) for name in self.code.info_names]

    async def run(self, context: Any, variables: dict[str, Any] | None) -> dict[str, Any]:
        runner = Runner(self.schema, self._variables(variables), self._infos(context))
        result: dict[str, Any] = await runner.run(self.code.complete, None)
        return result

    def open_stream(
        self, context: Any, variables: dict[str, Any] | None
    ) -> tuple[AsyncIterator[Any], Callable[[Any], Awaitable[dict[str, Any]]]]:
        """A subscription's source stream, and how to complete each of its events."""
        coerced, infos = self._variables(variables), self._infos(context)
        (root,) = self.root.fields
        info = ResolverInfo(context, root.node.name.value)
        source = Runner(self.schema, coerced, infos).call(root, info, None)
        if not isinstance(source, AsyncIterator):
            raise Fallback("the subscription resolver returned no stream")
        variables_key = repr(sorted((variables or {}).items()))

        async def complete(event: Any) -> dict[str, Any]:
            key = (getattr(event, "event_id", None), variables_key)
            if key[0] is not None and key in self._completed_events:
                return self._completed_events[key]
            value = await Runner(self.schema, coerced, infos).run(self.code.complete, event)
            data = {root.key: _encoded_once(value)}
            self.completions += 1
            if key[0] is not None:
                self._completed_events[key] = data
                if len(self._completed_events) > MAX_COMPLETED_EVENTS:
                    self._completed_events.popitem(last=False)
            return data

        return source, complete


def _encoded_once(value: Any) -> Any:
    """The completed event with its JSON, which every subscriber's frame embeds as it is: encoded
    once, not once per socket. A value orjson refuses stays plain, for each frame's encoder."""
    try:
        return Encoded(value)
    except orjson.JSONEncodeError:
        return value


def _named(gtype: GraphQLOutputType) -> Any:
    while isinstance(gtype, GraphQLNonNull | GraphQLList):
        gtype = gtype.of_type
    return gtype


class _Compiler:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.schema = schema
        self.fragments = fragments

    def collect(
        self, parent: GraphQLObjectType, selections: Iterable[SelectionSetNode]
    ) -> OrderedDict[str, list[FieldNode]]:
        """Fields by response key, in document order, through fragments (graphql's
        CollectFields, minus directives and abstract types, which are not compiled)."""
        grouped: OrderedDict[str, list[FieldNode]] = OrderedDict()
        for selection_set in selections:
            self._collect_into(parent, selection_set, grouped)
        return grouped

    def _collect_into(
        self,
        parent: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: OrderedDict[str, list[FieldNode]],
    ) -> None:
        for node in selection_set.selections:
            if node.directives:
                raise NotCompilable("directives")
            if isinstance(node, FieldNode):
                key = node.alias.value if node.alias else node.name.value
                grouped.setdefault(key, []).append(node)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition.name.value if node.type_condition else None
                self._same_type(parent, condition)
                self._collect_into(parent, node.selection_set, grouped)
            elif isinstance(node, FragmentSpreadNode):
                fragment = self.fragments[node.name.value]
                if fragment.directives:
                    raise NotCompilable("directives")
                self._same_type(parent, fragment.type_condition.name.value)
                self._collect_into(parent, fragment.selection_set, grouped)

    @staticmethod
    def _same_type(parent: GraphQLObjectType, condition: str | None) -> None:
        if condition is not None and condition != parent.name:
            raise NotCompilable("a fragment on another type")

    def object_plan(
        self, parent: GraphQLObjectType, selections: Iterable[SelectionSetNode]
    ) -> ObjectPlan:
        plan = ObjectPlan(type_name=parent.name)
        for key, nodes in self.collect(parent, selections).items():
            first = nodes[0]
            name = first.name.value
            if name == "__typename":
                plan.fields.append(FieldPlan(key, parent, None, None, first))
                continue
            definition = parent.fields.get(name)
            if definition is None:
                raise NotCompilable(f"{parent.name}.{name}")
            strawberry_field = definition.extensions.get(_DEFINITION)
            if not isinstance(strawberry_field, StrawberryField):
                raise NotCompilable(f"{parent.name}.{name} is not a strawberry field")
            if strawberry_field.extensions or strawberry_field.permission_classes:
                raise NotCompilable(f"{parent.name}.{name} has field extensions")
            f = FieldPlan(key, definition.type, definition, strawberry_field, first)
            named = _named(definition.type)
            if isinstance(named, GraphQLObjectType):
                f.selection = self.object_plan(
                    named, [n.selection_set for n in nodes if n.selection_set]
                )
            elif not isinstance(named, GraphQLScalarType | GraphQLEnumType):
                raise NotCompilable(f"{named} is abstract")
            if strawberry_field.is_basic_field:
                f.attribute = strawberry_field.python_name
            else:
                f.resolved = True
            synchronous = not f.resolved and (f.selection is None or f.selection.synchronous)
            plan.synchronous = plan.synchronous and synchronous
            plan.fields.append(f)
        return plan


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        operations = [o for o in operations if o.name and o.name.value == name]
    if len(operations) != 1:
        raise NotCompilable("operation not determined")
    return operations[0]


def compile_query(
    schema: Any, query: str, operation_name: str | None, rules: tuple[type[ASTValidationRule], ...]
) -> Plan:
    """A plan for a valid query document, or NotCompilable (strawberry then runs it)."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        raise NotCompilable("does not parse") from exc
    if validate_document(schema._schema, document, (*specified_rules, *rules)):
        raise NotCompilable("does not validate")
    operation = _operation(document, operation_name)
    if operation.directives or operation.operation is OperationType.MUTATION:
        raise NotCompilable("not a plain query or subscription")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    subscription = operation.operation is OperationType.SUBSCRIPTION
    root_type = schema._schema.subscription_type if subscription else schema._schema.query_type
    root = _Compiler(schema._schema, fragments).object_plan(root_type, [operation.selection_set])
    if subscription and (len(root.fields) != 1 or not root.fields[0].resolved):
        raise NotCompilable("a subscription has one root field")
    code = generate(schema, root, subscription=subscription)
    return Plan(schema=schema, operation=operation, root=root, code=code)


class PlanCache:
    """Plans by (document, operation name); documents that do not compile are remembered."""

    def __init__(
        self,
        schema: Any,
        rules: tuple[type[ASTValidationRule], ...],
        *,
        size: int = MAX_PLANS,
    ) -> None:
        self._schema = schema
        self._rules = rules
        self._size = size
        self._plans: OrderedDict[tuple[str, str | None], Plan | None] = OrderedDict()

    def get(self, query: str, operation_name: str | None) -> Plan | None:
        key = (query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        try:
            plan: Plan | None = compile_query(self._schema, query, operation_name, self._rules)
        except NotCompilable:
            plan = None
        self._plans[key] = plan
        if len(self._plans) > self._size:
            self._plans.popitem(last=False)
        return plan
