"""Generated Python for compiled plans: a document's selection becomes functions that build the
response from the resolvers' values, its serialisers inlined, instead of a walk over the plan.

graphql/compiled.py decides what each field is (a plain attribute, a resolver, __typename) and
this module writes one function per selected object type and one per completion that needs
its own (lists, resolvers' results), all decided once per document:

- a plain attribute is read and completed in line: a null check where the type is non-null,
  nothing more for a value graphql-core's serialiser would return as it is (a `str` for a
  String or an ID, a `bool`, an `int` in range), a table for an enum member, the scalar's
  serialiser otherwise;
- a resolver whose arguments hold no variables is called directly, with the call shape and
  the converted arguments strawberry's own `get_arguments` gives it (converted once, when
  each is an immutable value); one whose arguments hold variables goes through strawberry's
  argument conversion on every call;
- a resolver's coroutine runs at once up to its first real wait. One that never waits (a
  lead's stage when it was read with the lead) costs no task and no turn of the event loop;
  one that waits is a `Later`, and the Laters of an object or a list are awaited together
  (`asyncio.gather`), so sibling dataloaders still batch. Unlike graphql-core's, which gives
  each resolver a task, that first step runs in the task of whoever completes the field:
  what binds to the current task on entry (`asyncio.timeout`, a `TaskGroup`) before a
  resolver's first wait would bind to that task. No resolver of the schema does.

The plan's contract is unchanged: what only strawberry renders (a resolver raising, a non-null
field that is null, a value its serialiser refuses) raises `Fallback`, and nothing else is
caught. A resolver coroutine left waiting when a run fails is finished in the background, as
`gather` finishes its other children: never dropped half-way (it may hold a pool connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import itertools
import keyword
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLOutputType,
    GraphQLScalarType,
    ListValueNode,
    ObjectValueNode,
    ValueNode,
    VariableNode,
)
from graphql.error import GraphQLError
from graphql.execution.values import get_argument_values
from graphql.type.scalars import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    serialize_boolean,
    serialize_id,
    serialize_int,
    serialize_string,
)
from strawberry.schema.schema_converter import CustomGraphQLEnumType, get_arguments
from strawberry.types.field import StrawberryField
from strawberry.types.fields.resolver import StrawberryResolver

if TYPE_CHECKING:
    from leadgate.graphql.compiled import FieldPlan, ObjectPlan

NON_NULL_IS_NULL: Final = "a non-null field is null"
# Converted argument values that one conversion can serve every call with.
_IMMUTABLE: Final = (bool, int, float, str, enum.Enum)
_UNBOUND: Final = object()
# What a serialiser raises for a value it refuses (graphql-core's own raise GraphQLError).
_REFUSED: Final = (GraphQLError, TypeError, ValueError)
# Values the serialiser returns as they are, by the serialiser: the check that skips it.
_UNCHANGED: Final[dict[Callable[[Any], Any], str]] = {
    serialize_string: "type({v}) is str",
    serialize_id: "type({v}) is str",
    serialize_boolean: "type({v}) is bool",
    serialize_int: f"type({{v}}) is int and {GRAPHQL_MIN_INT} <= {{v}} <= {GRAPHQL_MAX_INT}",
}
# strawberry's JSON scalar serialises with `lambda v: v`, which cannot be recognised by identity.
_UNCHANGED_BY_NAME: Final = {"JSON": "type({v}) is dict"}


class Fallback(Exception):
    """Running the plan met what only strawberry renders (its `__cause__`, when an exception):
    strawberry's executor must produce the response."""


@dataclass(frozen=True, slots=True)
class ResolverInfo:
    """What our resolvers read from `info`: the context (and the field's name)."""

    context: Any
    field_name: str


Complete = Callable[["Runner", Any], Any]


class Later:
    """A value that is not there yet: `await later.value()` gives it, with every Later inside
    it awaited too. Nothing runs until then (so a Later never awaited leaves no coroutine
    that was never started)."""

    __slots__ = ("_args", "_settle")

    def __init__(self, settle: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        self._settle = settle
        self._args = args

    def value(self) -> Coroutine[Any, Any, Any]:
        return self._settle(*self._args)


class _Waiting:
    """A resolver's coroutine that ran up to its first wait, and what it is waiting on.
    Awaiting this finishes it (`yield from`'s delegation: a started coroutine cannot be
    awaited again); at most once, so `coroutine` is None once something drives it."""

    __slots__ = ("coroutine", "yielded")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coroutine: Coroutine[Any, Any, Any] | None = coroutine
        self.yielded = yielded
        # A future a coroutine yields stays marked "being yielded" until a task takes it (and
        # clears the mark); a second `await` of it meanwhile would fail ("await wasn't used
        # with future"). No task takes this one until the Later is awaited, and another
        # resolver may await the same future first (a dataloader's, shared by equal keys):
        # cleared here as a task would, marked again when a task is handed it.
        if getattr(yielded, "_asyncio_future_blocking", None) is not None:
            yielded._asyncio_future_blocking = False

    def close(self) -> None:
        if self.coroutine is not None:
            self.coroutine.close()
            self.coroutine = None

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, self.coroutine = self.coroutine, None
        if coroutine is None:
            raise RuntimeError("a waiting resolver is driven twice")
        yielded = self.yielded
        if getattr(yielded, "_asyncio_future_blocking", None) is not None:
            yielded._asyncio_future_blocking = True  # as `await` hands a future to its task
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task: passed on
                try:
                    yielded = coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = coroutine.send(sent)
                except StopIteration as done:
                    return done.value


async def _resumed(waiting: _Waiting) -> Any:
    try:
        return await waiting
    except Exception as exc:
        raise Fallback("an awaited resolver raised") from exc


async def _awaited(awaitable: Any) -> Any:
    """A resolver's awaitable result that is not a coroutine (a future, say)."""
    try:
        return await awaitable
    except Exception as exc:
        raise Fallback("an awaited resolver raised") from exc


async def _then(later: Later, complete: Complete, runner: Runner) -> Any:
    value = complete(runner, await later.value())
    return await value.value() if type(value) is Later else value


async def _gathered(container: Any, pending: list[tuple[Any, Later]]) -> Any:
    """`container` (a dict or a list) with each pending entry's value put in its place."""
    if len(pending) == 1:
        ((key, later),) = pending
        container[key] = await later.value()
        return container
    values = await asyncio.gather(*(later.value() for _, later in pending))
    for (key, _), value in zip(pending, values, strict=True):
        container[key] = value
    return container


_BACKGROUND: Final[set[asyncio.Task[None]]] = set()


async def _finish(waiting: _Waiting) -> None:
    # Only that it finishes matters: its value, or its error, is strawberry's to produce again.
    with contextlib.suppress(Exception):
        await waiting


class Runner:
    """One run of a plan: the coerced variables, each resolved field's `info`, and the resolver
    coroutines that had to wait (finished in the background when the run fails)."""

    __slots__ = ("_waiting", "infos", "schema", "variables")

    def __init__(self, schema: Any, variables: Any, infos: list[ResolverInfo]) -> None:
        self.schema = schema
        self.variables = variables
        self.infos = infos
        self._waiting: list[_Waiting] = []

    async def run(self, complete: Complete, source: Any) -> Any:
        """`complete(self, source)` with every Later in it awaited."""
        try:
            value = complete(self, source)
            if type(value) is Later:
                value = await value.value()
        except BaseException:
            self._finish_waiting()
            raise
        return value

    def begin(self, result: Any) -> Any:
        """A resolver's result: its value when it needs no waiting (a coroutine runs up to its
        first wait), else a Later. What the coroutine raises is the resolver's error."""
        if type(result) is CoroutineType:
            try:
                yielded = result.send(None)
            except StopIteration as done:
                return done.value
            waiting = _Waiting(result, yielded)
            self._waiting.append(waiting)
            return Later(_resumed, waiting)
        if inspect.isawaitable(result):
            return Later(_awaited, result)
        return result

    def call(self, plan: FieldPlan, info: ResolverInfo, source: Any) -> Any:
        """The resolver's result through strawberry's argument conversion (maybe awaitable);
        what the resolver, or the coercion and conversion of its arguments, raises is
        rendered by strawberry."""
        sf, definition = plan.strawberry_field, plan.definition
        if sf is None or definition is None:
            # Only fields compiled as resolved reach here: a bug, not strawberry's to render.
            raise TypeError(f"{plan.key} has no resolver")
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

    def resolve(self, plan: FieldPlan, info: ResolverInfo, source: Any) -> Any:
        """The generated code's way to a resolver it does not call directly (its arguments
        hold variables, say): its value, or a Later."""
        result = self.call(plan, info, source)
        try:
            return self.begin(result)
        except Exception as exc:
            raise Fallback(f"{plan.key}: the resolver raised") from exc

    def _finish_waiting(self) -> None:
        waiting = [w for w in self._waiting if w.coroutine is not None]
        if not waiting:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # collected outside a loop: nothing can run them any more
            for w in waiting:
                w.close()
            return
        for w in waiting:
            task = loop.create_task(_finish(w))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)


@dataclass(frozen=True, slots=True)
class Generated:
    """A plan's code. `complete(runner, None)` answers a query (its data, or a Later);
    a subscription's `complete(runner, event)` is its root field's value for an event.
    `info_names`: the field name of each resolved field, by the index the code reads
    `runner.infos` at. `source`: the generated module, for reading."""

    complete: Complete
    info_names: tuple[str, ...]
    source: str


def generate(schema: Any, root: ObjectPlan, *, subscription: bool) -> Generated:
    """The code of a plan whose root selection is `root` (`schema`: the strawberry schema)."""
    writer = _Writer(schema)
    if subscription:
        (field,) = root.fields
        complete, _ = writer.value_function(field.graphql_type, field.selection)
    else:
        complete = writer.object_function(root)
    source = "\n\n".join(writer.functions) + "\n"
    namespace = writer.namespace
    exec(compile(source, "<leadgate compiled plan>", "exec"), namespace)  # noqa: S102 - our code
    return Generated(
        complete=namespace[complete], info_names=tuple(writer.info_names), source=source
    )


def _unchanged(gtype: GraphQLOutputType) -> str | None:
    """The check (on `{v}`) that a value of this leaf type serialises as it is, if any."""
    if isinstance(gtype, GraphQLScalarType):
        return _UNCHANGED.get(gtype.serialize) or _UNCHANGED_BY_NAME.get(gtype.name)
    return None


def _enum_names(gtype: GraphQLEnumType) -> dict[Any, Any] | None:
    """Each member of a strawberry enum's Python class and what it serialises as, when every
    member serialises."""
    if not isinstance(gtype, CustomGraphQLEnumType):
        return None
    try:
        members: list[Any] = list(gtype.wrapped_cls)
        return {member: gtype.serialize(member) for member in members}
    except _REFUSED:
        return None


def _may_wait(selection: ObjectPlan | None) -> bool:
    return selection is not None and not selection.synchronous


def _null() -> Any:
    """A non-null list item that is null (called from a comprehension, which cannot raise)."""
    raise Fallback(NON_NULL_IS_NULL)


class _Probe:
    """Stands for the source or the info when reading a resolver's call shape."""


def _uses_variables(node: FieldNode) -> bool:
    def uses(value: ValueNode) -> bool:
        if isinstance(value, VariableNode):
            return True
        if isinstance(value, ListValueNode):
            return any(uses(v) for v in value.values)
        if isinstance(value, ObjectValueNode):
            return any(uses(f.value) for f in value.fields)
        return False

    return any(uses(argument.value) for argument in node.arguments or ())


class _Writer:
    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.functions: list[str] = []
        self.info_names: list[str] = []
        self.namespace: dict[str, Any] = {
            "_Fallback": Fallback,
            "_Later": Later,
            "_then": _then,
            "_gathered": _gathered,
            "_null": _null,
            "_Refused": _REFUSED,
        }
        self._numbers = itertools.count()
        # Each function written once, however many places call it (a resolved field's
        # completion is both in line and, for its Later, a function).
        self._written: dict[tuple[str, int, int], str] = {}

    def name(self, prefix: str, value: Any = _UNBOUND) -> str:
        """A fresh global name of the generated module, bound to `value` when given."""
        name = f"{prefix}{next(self._numbers)}"
        if value is not _UNBOUND:
            self.namespace[name] = value
        return name

    def object_function(self, plan: ObjectPlan) -> str:
        """`o(r, s)`: the selection of `plan` on `s` (a dict, or a Later when it must wait)."""
        key = ("o", id(plan), 0)
        if key in self._written:
            return self._written[key]
        name = self._written[key] = self.name("o")
        body: list[str] = []
        entries: list[str] = []
        waits: list[tuple[str, str]] = []
        for n, f in enumerate(plan.fields):
            var = f"v{n}"
            if f.definition is None:  # __typename
                entries.append(f"{f.key!r}: {plan.type_name!r}")
                continue
            if f.resolved:
                body += self.resolved(f, var)
                waits.append((f.key, var))
            else:
                body.append(f"{var} = {_attribute('s', f)}")
                body += self.fix(f.graphql_type, f.selection, var)
                if _may_wait(f.selection):
                    waits.append((f.key, var))
            entries.append(f"{f.key!r}: {var}")
        if any(f.resolved for f in plan.fields):
            body.insert(0, "I = r.infos")
        body.append("d = {" + ", ".join(entries) + "}")
        if waits:
            pairs = ", ".join(f"({key!r}, {var})" for key, var in waits)
            body += [
                "if " + " or ".join(f"type({var}) is _Later" for _, var in waits) + ":",
                f"    p = [(k, w) for k, w in ({pairs},) if type(w) is _Later]",
                "    return _Later(_gathered, d, p)",
            ]
        body.append("return d")
        self.functions.append(_function(name, "r, s", body))
        return name

    def resolved(self, f: FieldPlan, var: str) -> list[str]:
        """`var` = the resolver's completed value, or a Later."""
        index = len(self.info_names)
        self.info_names.append(f.node.name.value)
        later, _ = self.value_function(f.graphql_type, f.selection)
        call = self.direct_call(f, f"I[{index}]")
        if call is not None:
            message = f"{f.key}: the resolver raised"
            lines = [
                "try:",
                f"    {var} = r.begin({call})",
                "except Exception as exc:",
                f"    raise _Fallback({message!r}) from exc",
            ]
        else:
            lines = [f"{var} = r.resolve({self.name('F', f)}, I[{index}], s)"]
        return [
            *lines,
            f"if type({var}) is _Later:",
            f"    {var} = _Later(_then, {var}, {later}, r)",
            "else:",
            *_indent(self.fix(f.graphql_type, f.selection, var) or ["pass"]),
        ]

    def direct_call(self, f: FieldPlan, info: str) -> str | None:
        """The call of a resolver whose arguments hold no variables, as strawberry would make
        it: the source and `info` where `get_arguments` puts them, and the arguments it
        converts, converted once (when each is an immutable value, which every call would
        convert alike). None when that cannot be said of this field."""
        sf, definition = f.strawberry_field, f.definition
        if sf is None or definition is None or _uses_variables(f.node):
            return None
        resolver = sf.base_resolver
        if (
            resolver is None
            or type(sf).get_result is not StrawberryField.get_result
            or type(resolver).__call__ is not StrawberryResolver.__call__
            or not callable(resolver.wrapped_func)
        ):
            return None
        source, probe = _Probe(), _Probe()
        try:
            args, kwargs = get_arguments(
                field=sf,
                source=source,
                info=probe,  # type: ignore[arg-type]
                kwargs=get_argument_values(definition, f.node),
                config=self.schema.config,
                scalar_registry=self.schema.schema_converter.scalar_registry,
            )
        except Exception:  # noqa: BLE001 - raised again, and rendered, when the field runs
            return None

        def passed(value: Any) -> str | None:
            if value is source:
                return "s"
            if value is probe:
                return info
            if value is None or isinstance(value, _IMMUTABLE):
                return self.name("K", value)
            return None

        parts = [passed(a) for a in args]
        for name, value in kwargs.items():
            given = passed(value)
            ok = given is not None and name.isidentifier() and not keyword.iskeyword(name)
            parts.append(f"{name}={given}" if ok else None)
        if None in parts:
            return None
        function = self.name("R", resolver.wrapped_func)
        return f"{function}({', '.join(p for p in parts if p is not None)})"

    def value_function(
        self, gtype: GraphQLOutputType, selection: ObjectPlan | None
    ) -> tuple[str, bool]:
        """`c(r, v)`: `v` completed as `gtype`; and whether that may be a Later."""
        key = ("c", id(gtype), id(selection))
        if key in self._written:
            return self._written[key], _may_wait(selection)
        name = self._written[key] = self.name("c")
        body = [*self.fix(gtype, selection, "v"), "return v"]
        self.functions.append(_function(name, "r, v", body))
        return name, _may_wait(selection)

    def fix(self, gtype: GraphQLOutputType, selection: ObjectPlan | None, var: str) -> list[str]:
        """Statements that complete `var` as `gtype`, in place."""
        non_null = isinstance(gtype, GraphQLNonNull)
        inner = gtype.of_type if isinstance(gtype, GraphQLNonNull) else gtype
        if isinstance(inner, GraphQLList):
            completed = f"{var} = {self.list_function(inner, selection)}(r, {var})"
        elif selection is not None:
            completed = f"{var} = {self.object_function(selection)}(r, {var})"
        else:
            return self.leaf(inner, var, non_null=non_null)
        if non_null:
            return [f"if {var} is None:", f"    raise _Fallback({NON_NULL_IS_NULL!r})", completed]
        return [f"if {var} is not None:", f"    {completed}"]

    def leaf(self, gtype: GraphQLOutputType, var: str, *, non_null: bool) -> list[str]:
        """`fix` for a scalar or an enum: the cheapest test first (a value its serialiser would
        return unchanged, an enum member), the null check and the serialiser behind it."""
        if not isinstance(gtype, GraphQLScalarType | GraphQLEnumType):
            raise TypeError(f"{gtype} is neither an object nor a leaf")  # the compiler refuses
        serialize = self.name("S", gtype.serialize)
        refused = f"{gtype.name + ' does not serialise '!r} + repr({var})[:80]"
        slow = [
            "try:",
            f"    {var} = {serialize}({var})",
            "except _Refused as exc:",
            f"    raise _Fallback({refused}) from exc",
            f"if {var} is None:",
            f"    raise _Fallback({gtype.name + ' serialised a value as null'!r})",
        ]
        if non_null:
            slow = [f"if {var} is None:", f"    raise _Fallback({NON_NULL_IS_NULL!r})", *slow]
        else:
            slow = [f"if {var} is not None:", *_indent(slow)]
        unchanged = _unchanged(gtype)
        if unchanged is not None:
            return [f"if not ({unchanged.format(v=var)}):", *_indent(slow)]
        names = _enum_names(gtype) if isinstance(gtype, CustomGraphQLEnumType) else None
        if names is not None and isinstance(gtype, CustomGraphQLEnumType):
            table, members = self.name("T", names), self.name("E", gtype.wrapped_cls)
            return [
                f"if type({var}) is {members}:",
                f"    {var} = {table}[{var}]",
                "else:",
                *_indent(slow),
            ]
        return slow

    def list_function(self, gtype: GraphQLList[Any], selection: ObjectPlan | None) -> str:
        """`l(r, v)`: each item of `v` completed (a list, or a Later when items must wait)."""
        key = ("l", id(gtype), id(selection))
        if key in self._written:
            return self._written[key]
        name = self._written[key] = self.name("l")
        item_type = gtype.of_type
        non_null = isinstance(item_type, GraphQLNonNull)
        named = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        unchanged = _unchanged(named)
        if selection is not None and not isinstance(named, GraphQLList):
            obj = self.object_function(selection)
            otherwise = "_null()" if non_null else "None"
            body = [f"v = [{obj}(r, e) if e is not None else {otherwise} for e in v]"]
        elif unchanged is not None:
            item, _ = self.value_function(item_type, selection)
            body = [f"v = [e if {unchanged.format(v='e')} else {item}(r, e) for e in v]"]
        else:
            item, _ = self.value_function(item_type, selection)
            body = [f"v = [{item}(r, e) for e in v]"]
        if _may_wait(selection):
            body += [
                "p = [(i, e) for i, e in enumerate(v) if type(e) is _Later]",
                "if p:",
                "    return _Later(_gathered, v, p)",
            ]
        self.functions.append(_function(name, "r, v", [*body, "return v"]))
        return name


def _attribute(source: str, f: FieldPlan) -> str:
    attribute = f.attribute or ""
    if attribute.isidentifier() and not keyword.iskeyword(attribute):
        return f"{source}.{attribute}"
    return f"getattr({source}, {attribute!r})"


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def _function(name: str, parameters: str, body: list[str]) -> str:
    return "\n".join([f"def {name}({parameters}):", *_indent(body)])
