"""Admission: every limit and every document check, before a resolver or SQL statement runs.

A document is admitted in this order, each step refusing with its own code:
1. at most `max_document_tokens` tokens, counted by graphql-core's lexer before anything is
   parsed (a 100,000-token document stops at the limit) — QUERY_TOO_COMPLEX;
2. it parses — BAD_REQUEST;
3. it validates against the schema (introspection and "Did you mean" suggestions are
   settings) — VALIDATION_ERROR;
4. depth and aliases within their limits — QUERY_TOO_COMPLEX;
5. it names one operation (or has only one), of a type this transport runs — BAD_REQUEST,
   or METHOD_NOT_ALLOWED for a mutation over GET;
6. its variables fit their types — VALIDATION_ERROR;
7. its cost, with those variables, fits the budget — QUERY_TOO_COMPLEX.
Steps 1–4 depend on the text alone and are remembered per document.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    Lexer,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Source,
    TokenKind,
    get_named_type,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
    value_from_ast,
)
from graphql.execution.values import get_variable_values
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import max_aliases, query_depth_limiter

from leadgate.config import Settings
from leadgate.domain.errors import (
    AppError,
    BadRequest,
    MethodNotAllowed,
    QueryTooComplex,
    ValidationFailed,
)

MAX_REMEMBERED: Final = 512
# Longer documents are checked every time rather than kept (the cache's memory stays bounded).
MAX_REMEMBERED_LENGTH: Final = 64 * 1024
# The arguments that size a list: its selection is counted this many times.
SIZE_ARGUMENTS: Final = ("limit", "first", "last")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Limits:
    max_tokens: int = 5_000
    max_depth: int = 10
    max_aliases: int = 30
    max_cost: int = 50_000
    introspection: bool = True
    suggestions: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_tokens=settings.max_document_tokens,
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_cost=settings.max_cost,
            introspection=settings.introspection,
            suggestions=settings.suggestions,
        )


class WrongTransport(BadRequest):
    """The request is sound but was sent the wrong way (no query, a subscription over HTTP)."""


class Refused(Exception):
    """The request was refused before execution; `errors` say why (no `data` entry)."""

    def __init__(
        self,
        cause: AppError,
        errors: list[GraphQLError] | None = None,
        *,
        cost: dict[str, int] | None = None,
    ) -> None:
        super().__init__(cause.message)
        self.cause = cause
        self.errors = errors or [_error(cause)]
        self.cost = cost
        # A refusal of the document itself (not of how it was sent): GraphQL-over-HTTP
        # answers these with 200 to application/json clients.
        self.of_document = not isinstance(cause, MethodNotAllowed | WrongTransport)


@dataclass(frozen=True, slots=True)
class Admitted:
    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any]
    cost: dict[str, int]


def _error(cause: AppError, template: GraphQLError | None = None) -> GraphQLError:
    extensions: dict[str, Any] = {"code": cause.code}
    if isinstance(cause, ValidationFailed) and cause.fields:
        extensions["fields"] = [{"field": f.field, "message": f.message} for f in cause.fields]
    if template is None:
        return GraphQLError(cause.message, original_error=cause, extensions=extensions)
    return GraphQLError(
        template.message,
        template.nodes,
        template.source,
        template.positions,
        original_error=cause,
        extensions=extensions,
    )


class Gate:
    def __init__(self, schema: GraphQLSchema, limits: Limits) -> None:
        self._schema = schema
        self.limits = limits
        rules: list[type[ASTValidationRule]] = list(specified_rules)
        if not limits.introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self._rules: Final = tuple(rules)
        self._limit_rules: Final = (
            query_depth_limiter.create_validator(limits.max_depth, should_ignore=None),
            max_aliases.create_validator(limits.max_aliases),
        )
        self._documents: OrderedDict[str, DocumentNode | Refused] = OrderedDict()

    def admit(
        self,
        query: object,
        operation_name: object,
        variables: object,
        allowed: Collection[str],
    ) -> Admitted:
        """The document to run, or Refused. `allowed`: the operation types ("query",
        "mutation", "subscription") this transport runs."""
        if not isinstance(query, str) or not query.strip():
            raise Refused(WrongTransport("No GraphQL query found in the request"))
        if operation_name is not None and not isinstance(operation_name, str):
            raise Refused(WrongTransport("operationName must be a string or null"))
        if variables is not None and not isinstance(variables, dict):
            raise Refused(WrongTransport("variables must be an object or null"))
        document = self._document(query)
        operation = _operation(document, operation_name)
        _check_type(operation.operation, allowed)
        _check_text(variables or {}, "variables")
        coerced = self._variables(operation, variables or {})
        requested = _Cost(self._schema, document, coerced).operation(operation)
        cost = {"requested": requested, "limit": self.limits.max_cost}
        if requested > self.limits.max_cost:
            raise Refused(
                QueryTooComplex(
                    f"The query's cost is {requested}, over the budget of "
                    f"{self.limits.max_cost} (each field costs 1; a list counts its "
                    f"selection `limit`/`first` times)"
                ),
                cost=cost,
            )
        return Admitted(document, operation, coerced, cost)

    def _document(self, query: str) -> DocumentNode:
        found = self._documents.get(query)
        if found is None:
            found = self._check(query)
            if len(query) <= MAX_REMEMBERED_LENGTH:
                self._documents[query] = found
                if len(self._documents) > MAX_REMEMBERED:
                    self._documents.popitem(last=False)
        else:
            self._documents.move_to_end(query)
        if isinstance(found, Refused):
            raise found
        return found

    def _check(self, query: str) -> DocumentNode | Refused:
        try:
            if _more_tokens_than(query, self.limits.max_tokens):
                return Refused(
                    QueryTooComplex(f"The document has more than {self.limits.max_tokens} tokens")
                )
            document = parse(query)
        except GraphQLError as exc:
            return Refused(BadRequest(exc.message), [_error(BadRequest(exc.message), exc)])
        hide = not self.limits.suggestions
        invalid = validate(self._schema, document, self._rules, hide_suggestions=hide)
        if invalid:
            return _refusal(_invalid, invalid)
        excessive = validate(self._schema, document, self._limit_rules)
        if excessive:
            return _refusal(QueryTooComplex, excessive)
        return document

    def _variables(
        self, operation: OperationDefinitionNode, variables: dict[str, Any]
    ) -> dict[str, Any]:
        coerced = get_variable_values(
            self._schema,
            operation.variable_definitions or (),
            variables,
            max_errors=20,
            hide_suggestions=not self.limits.suggestions,
        )
        if isinstance(coerced, list):
            raise _refusal(_invalid, coerced)
        values: dict[str, Any] = coerced.coerced
        return values


def _refusal(cause: Callable[[str], AppError], errors: list[GraphQLError]) -> Refused:
    causes = [cause(e.message) for e in errors]
    return Refused(causes[0], [_error(c, e) for c, e in zip(causes, errors, strict=True)])


def _invalid(message: str) -> AppError:
    return ValidationFailed([], message)


def _check_text(value: object, path: str) -> None:
    """Refuse lone surrogates anywhere in the variables: JSON can carry them, but they are not
    text, and no string column (or Unicode encoder) accepts them."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise Refused(ValidationFailed.single(path, "must be valid Unicode text"))
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            _check_text(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{path}[{index}]")


def _more_tokens_than(query: str, limit: int) -> bool:
    lexer = Lexer(Source(query))
    return all(lexer.advance().kind is not TokenKind.EOF for _ in range(limit + 1))


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    operation = get_operation_ast(document, name)
    if operation is not None:
        return operation
    if name is not None:
        raise Refused(BadRequest(f"The document has no operation named '{name}'"))
    raise Refused(
        BadRequest("The document has several operations: name the one to run (operationName)")
    )


def _check_type(kind: OperationType, allowed: Collection[str]) -> None:
    if kind.value in allowed:
        return
    if kind is OperationType.SUBSCRIPTION:
        raise Refused(
            WrongTransport(
                "Subscriptions run over a WebSocket (graphql-transport-ws) at /graphql, "
                "not over a plain HTTP request"
            )
        )
    raise Refused(MethodNotAllowed(("POST",), f"A {kind.value} must be sent with POST"))


class _Cost:
    """Each field costs 1; a field sized by `limit`/`first`/`last` counts its selection that
    many times (its default when the argument is left out); other lists count it once."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]
    ) -> None:
        self._schema = schema
        self._variables = dict(variables)
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._memo: dict[str, int] = {}

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self._schema.get_root_type(operation.operation)
        return self._selection(root, operation.selection_set) if root else 0

    def _selection(self, parent: GraphQLNamedType | None, selection: SelectionSetNode) -> int:
        total = 0
        for node in selection.selections:
            if isinstance(node, FieldNode):
                total += self._field(parent, node)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                target = self._schema.get_type(condition.name.value) if condition else parent
                total += self._selection(target, node.selection_set)
            elif isinstance(node, FragmentSpreadNode):
                total += self._fragment(node.name.value)
        return total

    def _fragment(self, name: str) -> int:
        if name not in self._memo:
            fragment = self._fragments[name]
            target = self._schema.get_type(fragment.type_condition.name.value)
            self._memo[name] = self._selection(target, fragment.selection_set)
        return self._memo[name]

    def _field(self, parent: GraphQLNamedType | None, node: FieldNode) -> int:
        if node.selection_set is None:
            return 1
        name = node.name.value
        if name == "__schema":
            definition = SchemaMetaFieldDef
        elif name == "__type":
            definition = TypeMetaFieldDef
        elif isinstance(parent, GraphQLObjectType) and name in parent.fields:
            definition = parent.fields[name]
        else:
            return 1
        inner = self._selection(get_named_type(definition.type), node.selection_set)
        return 1 + self._size(definition.args, node) * inner

    def _size(self, arguments: Mapping[str, Any], node: FieldNode) -> int:
        given = {a.name.value: a.value for a in node.arguments or ()}
        for name in SIZE_ARGUMENTS:
            argument = arguments.get(name)
            if argument is None:
                continue
            if name in given:
                value = value_from_ast(given[name], argument.type, self._variables)
            else:
                value = argument.default_value
            if isinstance(value, int) and not isinstance(value, bool):
                return max(value, 1)
        return 1
