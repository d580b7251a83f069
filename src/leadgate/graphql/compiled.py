"""Compiled queries: a validated query document becomes a plan that runs the same resolvers
and serialisers as strawberry, without graphql-core's generic per-field machinery.

graphql-core spends most of a list query's CPU on bookkeeping around each of its hundreds of
fields (resolve info, paths, awaitable checks, a task per async field). A plan is made once
per distinct document: the selection flattened per type, each field's resolver (strawberry's
own, with its own argument conversion) or plain attribute, and its output type's serialiser.
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

import asyncio
import inspect
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
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.schema.schema import validate_document
from strawberry.schema.schema_converter import get_arguments
from strawberry.types.field import StrawberryField

from leadgate.graphql.encoding import Encoded

MAX_PLANS: Final = 512
MAX_COMPLETED_EVENTS: Final = 256
_DEFINITION: Final = "strawberry-definition"


class NotCompilable(Exception):
    """The document uses something a plan does not reproduce exactly."""


class Fallback(Exception):
    """Running the plan met what only strawberry renders (its `__cause__`, when an exception):
    strawberry's executor must produce the response."""


@dataclass(frozen=True, slots=True)
class ResolverInfo:
    """What our resolvers read from `info`: the context (and the field's name)."""

    context: Any
    field_name: str


Complete = Callable[[Any], Any]
CompleteAsync = Callable[["_Runner", Any], Awaitable[Any]]


@dataclass(slots=True)
class FieldPlan:
    key: str
    graphql_type: GraphQLOutputType
    definition: GraphQLField | None  # None for __typename
    strawberry_field: StrawberryField | None
    node: FieldNode
    selection: ObjectPlan | None = None
    # Decided once at compile time, so running a plan does no per-value type dispatch:
    attribute: str | None = None  # a plain attribute (no resolver), read with getattr
    resolved: bool = False  # a resolver runs (with converted arguments and `info`)
    complete: Complete | None = None  # value → JSON, when that needs no awaiting
    complete_async: CompleteAsync = field(default_factory=lambda: _unreachable)


@dataclass(slots=True)
class ObjectPlan:
    type_name: str
    fields: list[FieldPlan] = field(default_factory=list)
    # No resolver anywhere below: complete synchronously, no coroutine per object.
    synchronous: bool = True


@dataclass(slots=True)
class Plan:
    schema: Any  # the strawberry schema (for argument conversion)
    operation: OperationDefinitionNode
    root: ObjectPlan
    # A subscription's events, completed once per event for every subscriber of this
    # document: fan-out to thousands then costs one completion, not thousands.
    _completed_events: OrderedDict[tuple[Any, str], dict[str, Any]] = field(
        default_factory=OrderedDict
    )
    # Events completed (and encoded) so far: one per event and variables, whatever the
    # number of subscribers.
    completions: int = 0

    def _runner(self, context: Any, variables: dict[str, Any] | None) -> _Runner:
        coerced = get_variable_values(
            self.schema._schema, self.operation.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            raise Fallback("variables do not coerce") from coerced[0]
        return _Runner(self.schema, context, coerced)

    async def run(self, context: Any, variables: dict[str, Any] | None) -> dict[str, Any]:
        result: dict[str, Any] = await self._runner(context, variables).complete_object(
            self.root, None
        )
        return result

    def open_stream(
        self, context: Any, variables: dict[str, Any] | None
    ) -> tuple[AsyncIterator[Any], Callable[[Any], Awaitable[dict[str, Any]]]]:
        """A subscription's source stream, and how to complete each of its events."""
        runner = self._runner(context, variables)
        (root,) = self.root.fields
        source = runner.resolve(root, None)
        if not isinstance(source, AsyncIterator):
            raise Fallback("the subscription resolver returned no stream")
        variables_key = repr(sorted((variables or {}).items()))

        async def complete(event: Any) -> dict[str, Any]:
            key = (getattr(event, "event_id", None), variables_key)
            if key[0] is not None and key in self._completed_events:
                return self._completed_events[key]
            data = {root.key: _encoded_once(await root.complete_async(runner, event))}
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


class _Runner:
    __slots__ = ("context", "schema", "variables")

    def __init__(self, schema: Any, context: Any, variables: Any) -> None:
        self.schema = schema
        self.context = context
        self.variables = variables

    def resolve(self, plan: FieldPlan, source: Any) -> Any:
        """The resolver's result (maybe awaitable); what the resolver, or the coercion and
        conversion of its arguments, raises is rendered by strawberry."""
        sf, definition = plan.strawberry_field, plan.definition
        if sf is None or definition is None:
            # Only fields compiled as resolved reach here: a bug, not strawberry's to render.
            raise TypeError(f"{plan.key} has no resolver")
        info = ResolverInfo(
            context=self.context,
            field_name=definition.ast_node.name.value if definition.ast_node else plan.key,
        )
        try:
            raw = get_argument_values(definition, plan.node, self.variables)
            args, kwargs = get_arguments(
                field=sf,
                source=source,
                info=info,  # type: ignore[arg-type]
                kwargs=raw,
                config=self.schema.config,
                scalar_registry=self.schema.schema_converter.scalar_registry,
            )
            return sf.get_result(source, info=info, args=args, kwargs=kwargs)  # type: ignore[arg-type]
        except Exception as exc:
            raise Fallback(f"{plan.key}: the resolver raised") from exc

    async def complete_object(self, plan: ObjectPlan, source: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        pending: list[tuple[FieldPlan, Any]] = []
        try:
            for f in plan.fields:
                if f.attribute is not None:
                    value = getattr(source, f.attribute)
                    if f.complete is not None:
                        out[f.key] = f.complete(value)
                        continue
                elif f.resolved:
                    value = self.resolve(f, source)
                else:
                    out[f.key] = plan.type_name  # __typename
                    continue
                pending.append((f, value))
                out[f.key] = None  # keeps the document's order; filled in below
        except BaseException:
            _close_unstarted(pending)
            raise
        if pending:
            try:
                # Started together, so sibling loaders batch into one query each.
                values = await asyncio.gather(*(f.complete_async(self, v) for f, v in pending))
            except BaseException:
                # Cancelled (a subscriber went away) before some completions took their first
                # step: their resolvers' coroutines were never started.
                _close_unstarted(pending)
                raise
            for (f, _), value in zip(pending, values, strict=True):
                out[f.key] = value
        return out


def _close_unstarted(pending: list[tuple[FieldPlan, Any]]) -> None:
    """Close the resolver coroutines nothing will await (a sibling fell back or failed, or
    the completion was cancelled), or each warns at collection that it was never awaited."""
    for _, value in pending:
        if inspect.iscoroutine(value) and inspect.getcoroutinestate(value) == "CORO_CREATED":
            value.close()


async def _unreachable(_runner: _Runner, _value: Any) -> Any:
    # __typename is answered without completion: reaching this is a bug, not a fallback.
    raise AssertionError("__typename has no completion")


async def _settled(value: Awaitable[Any]) -> Any:
    """An awaitable resolver result: what it raises is the resolver's error (strawberry's to
    render), not the plan's."""
    try:
        return await value
    except Exception as exc:
        raise Fallback("an awaited resolver raised") from exc


def _serializer(gtype: GraphQLOutputType) -> Complete:
    if not isinstance(gtype, GraphQLScalarType | GraphQLEnumType):
        raise NotCompilable(f"{gtype} is abstract")
    serialize = gtype.serialize
    # Values graphql-core's own serialiser would return unchanged skip the call.
    same = {"String": str, "Boolean": bool, "JSON": dict}.get(gtype.name)

    def complete(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is same:
            return value
        try:
            serialized = serialize(value)
        except (GraphQLError, TypeError, ValueError) as exc:
            raise Fallback(f"{gtype.name} does not serialise {value!r:.80}") from exc
        if serialized is None:
            raise Fallback(f"{gtype.name} serialised {value!r:.80} as null")
        return serialized

    return complete


def _object_completer(plan: ObjectPlan) -> Complete:
    """Completion of an object whose fields are all plain attributes (or __typename)."""
    steps = [(f.key, f.attribute, f.complete) for f in plan.fields]
    type_name = plan.type_name

    def complete(source: Any) -> Any:
        if source is None:
            return None
        return {
            key: completer(getattr(source, attribute)) if completer and attribute else type_name
            for key, attribute, completer in steps
        }

    return complete


def sync_completer(gtype: GraphQLOutputType, selection: ObjectPlan | None) -> Complete:
    if isinstance(gtype, GraphQLNonNull):
        inner = sync_completer(gtype.of_type, selection)

        def non_null(value: Any) -> Any:
            if value is None:
                raise Fallback("a non-null field is null")
            return inner(value)

        return non_null
    if isinstance(gtype, GraphQLList):
        item = sync_completer(gtype.of_type, selection)
        return lambda value: None if value is None else [item(v) for v in value]
    if selection is not None:
        return _object_completer(selection)
    return _serializer(gtype)


def async_completer(gtype: GraphQLOutputType, selection: ObjectPlan | None) -> CompleteAsync:
    """Completion that may wait: an awaitable resolver result, or objects with resolvers."""
    if isinstance(gtype, GraphQLNonNull):
        inner = async_completer(gtype.of_type, selection)

        async def non_null(runner: _Runner, value: Any) -> Any:
            if inspect.isawaitable(value):
                value = await _settled(value)
            if value is None:
                raise Fallback("a non-null field is null")
            return await inner(runner, value)

        return non_null
    if isinstance(gtype, GraphQLList):
        item = async_completer(gtype.of_type, selection)

        async def each(runner: _Runner, value: Any) -> Any:
            if inspect.isawaitable(value):
                value = await _settled(value)
            if value is None:
                return None
            return list(await asyncio.gather(*(item(runner, v) for v in value)))

        return each
    if selection is not None and not selection.synchronous:
        plan = selection

        async def obj(runner: _Runner, value: Any) -> Any:
            if inspect.isawaitable(value):
                value = await _settled(value)
            return None if value is None else await runner.complete_object(plan, value)

        return obj
    done = sync_completer(gtype, selection)

    async def leaf(_runner: _Runner, value: Any) -> Any:
        if inspect.isawaitable(value):
            value = await _settled(value)
        return done(value)

    return leaf


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
            if synchronous:
                f.complete = sync_completer(definition.type, f.selection)
            f.complete_async = async_completer(definition.type, f.selection)
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
    return Plan(schema=schema, operation=operation, root=root)


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
