"""What one GraphQL request may ask for, counted before anything runs: the cost and depth of its operations
(a validation rule, built once per schema so the validation cache keeps one key) and the nesting of its JSON.

Cost is counted like GitHub's node limit: every field costs one for each object it is resolved on; a paged
field (one with `first`) multiplies what is below it by its page size (the literal value, the argument's
default when absent, the largest page when it comes from a variable), and a list without paging by
`list_size`; the factors multiply down the tree, through fragments. Introspection is counted exactly: the
schema is known, so its fields are walked as they would be resolved. Depth counts every field on the deepest
path, introspection included, except the `ofType` chain of a type reference (one object per level,
bounded by how often a type is wrapped)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
    get_nullable_type,
)

__all__ = ["JsonTooDeep", "check_json_depth", "query_limit_rules"]

_INTROSPECTION_ROOTS = ("__schema", "__type")


class _OverLimit(Exception):
    """Counting stops as soon as the cost passes the limit: nothing more is needed to refuse."""


def query_limit_rules(
    *, max_depth: int, max_cost: int, list_size: int, max_page: int, introspection: bool = True
) -> list[type[ValidationRule]]:
    """The validation rule enforcing depth and cost, as a class made once (per schema) with its limits.
    Without `introspection` (refused by another rule) introspection fields are not walked."""

    class QueryLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            counter = _Counter(
                context, max_cost=max_cost, list_size=list_size, max_page=max_page, introspection=introspection
            )
            for definition in context.document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                name = definition.name.value if definition.name else "anonymous"
                root = context.schema.get_root_type(definition.operation)
                try:
                    depth = counter.depth(definition.selection_set, root)
                except RecursionError:
                    depth = max_depth + 2  # fragments spread within each other past the interpreter's reach
                if depth - 1 > max_depth:
                    context.report_error(GraphQLError(
                        f"'{name}' exceeds maximum operation depth of {max_depth}",
                        [definition],
                        extensions={"code": "QUERY_TOO_DEEP", "limit": max_depth, "depth": depth - 1},
                    ))
                    continue
                try:
                    counter.introspected = 0
                    cost = counter.cost(definition.selection_set, root, paged=False)
                except (_OverLimit, RecursionError):  # past the limit, or fragments nested past counting
                    cost = None
                if cost is None or cost > max_cost:
                    shown = f"query cost {cost:,}" if cost is not None else "query cost"
                    context.report_error(GraphQLError(
                        f"{shown} exceeds the limit of {max_cost:,} (operation '{name}'): every field counts once "
                        "for each object it is resolved on, and a list multiplies what it contains by its page "
                        "size (`first`); ask for smaller pages or fewer nested lists",
                        [definition],
                        extensions={"code": "QUERY_TOO_COSTLY", "limit": max_cost,
                                    **({"cost": cost} if cost is not None else {})},
                    ))

    return [QueryLimits]


class _Counter:
    def __init__(
        self, context: ValidationContext, *, max_cost: int, list_size: int, max_page: int, introspection: bool
    ):
        self.context, self.schema = context, context.schema
        self.max_cost, self.list_size, self.max_page = max_cost, list_size, max_page
        self.introspection = introspection
        # Introspection fields walked so far in the operation: the walk stops once they alone pass the limit.
        self.introspected = 0
        self._depths: dict[str, int] = {}
        self._costs: dict[tuple[str, bool], int] = {}
        self._visiting: set[str] = set()
        # Introspection resolvers need nothing of `info` but the schema.
        self._info = SimpleNamespace(schema=self.schema)

    # ---- shared --------------------------------------------------------------------------------------

    def _fields(self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None) -> Iterable[
        tuple[FieldNode, GraphQLNamedType | None]
    ]:
        """The fields of a selection set with the type each is selected on, fragments flattened."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection, parent
            elif isinstance(selection, InlineFragmentNode):
                on = self._type(selection.type_condition.name.value) if selection.type_condition else parent
                yield from self._fields(selection.selection_set, on)

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.schema.get_type(name)

    def _spreads(self, selection_set: SelectionSetNode) -> Iterable[FragmentDefinitionNode]:
        for selection in selection_set.selections:
            if isinstance(selection, FragmentSpreadNode):
                fragment = self.context.get_fragment(selection.name.value)
                if fragment is not None:
                    yield fragment
            elif isinstance(selection, InlineFragmentNode):
                yield from self._spreads(selection.selection_set)

    @staticmethod
    def _field(parent: GraphQLNamedType | None, name: str) -> Any:
        if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return parent.fields.get(name)
        return None

    # ---- depth ---------------------------------------------------------------------------------------

    def depth(self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None) -> int:
        """Fields on the deepest path below (and including) this selection set."""
        deepest = 0
        for node, on in self._fields(selection_set, parent):
            below = 0
            if node.selection_set is not None:
                field = self._field(on, node.name.value) if on is not None else None
                child = get_named_type(field.type) if field is not None else self._introspection_root(node)
                below = self.depth(node.selection_set, child)
            counts = not (node.name.value == "ofType" and on is not None and on.name == "__Type")
            deepest = max(deepest, below + (1 if counts else 0))
        for fragment in self._spreads(selection_set):
            name = fragment.name.value
            if name in self._visiting:
                continue
            if name not in self._depths:
                self._visiting.add(name)
                try:
                    self._depths[name] = self.depth(fragment.selection_set, self._type(fragment.type_condition.name.value))
                finally:
                    self._visiting.discard(name)
            deepest = max(deepest, self._depths[name])
        return deepest

    def _introspection_root(self, node: FieldNode) -> GraphQLNamedType | None:
        if node.name.value == "__schema":
            return self._type("__Schema")
        if node.name.value == "__type":
            return self._type("__Type")
        return None

    # ---- cost ----------------------------------------------------------------------------------------

    def cost(self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None, *, paged: bool) -> int:
        """The cost of a selection set resolved on one object. `paged`: the object is a page (a connection),
        so its lists (edges, nodes) are the page already counted."""
        total = 0
        for node, on in self._fields(selection_set, parent):
            name = node.name.value
            total += 1
            if node.selection_set is None:
                continue
            if name in _INTROSPECTION_ROOTS and on is self.schema.query_type:
                total += self._introspection(node) if self.introspection else 0
                continue
            field = self._field(on, name) if on is not None else None
            if field is None:  # unknown field: validation refuses it; count what is written
                total += self.cost(node.selection_set, None, paged=False)
                continue
            is_list = isinstance(get_nullable_type(field.type), GraphQLList)
            page = self._page(field, node)
            if page is not None:
                factor, child_paged = page, not is_list
            elif is_list:
                factor, child_paged = (1 if paged else self.list_size), False
            else:
                factor, child_paged = 1, False
            total += factor * self.cost(node.selection_set, get_named_type(field.type), paged=child_paged)
        for fragment in self._spreads(selection_set):
            key = (fragment.name.value, paged)
            if fragment.name.value in self._visiting:
                continue
            if key not in self._costs:
                self._visiting.add(fragment.name.value)
                try:
                    on = self._type(fragment.type_condition.name.value)
                    self._costs[key] = self.cost(fragment.selection_set, on, paged=paged)
                finally:
                    self._visiting.discard(fragment.name.value)
            total += self._costs[key]
        return total

    def _page(self, field: Any, node: FieldNode) -> int | None:
        """The page size of a paged field: `first` as written, its default, or the largest page for a variable."""
        argument = field.args.get("first")
        if argument is None:
            return None
        written = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
        if written is None:
            default = argument.default_value
            size = default if isinstance(default, int) else self.max_page
        elif isinstance(written, IntValueNode):
            size = int(written.value)
        else:
            size = self.max_page
        return max(1, min(size, self.max_page))

    def _introspection(self, node: FieldNode) -> int:
        """What an introspection field resolves, counted by walking the schema the way it would be resolved;
        stops at the limit."""
        if node.name.value == "__schema":
            return self._walk(node.selection_set, self._type("__Schema"), self.schema)
        written = next((a.value for a in node.arguments or () if a.name.value == "name"), None)
        if isinstance(written, StringValueNode):
            found = self.schema.get_type(written.value)
            return 0 if found is None else self._walk(node.selection_set, self._type("__Type"), found)
        # The name comes from a variable: counted for every type, an upper bound that stays cheap to reach.
        return sum(self._walk(node.selection_set, self._type("__Type"), t) for t in self.schema.type_map.values())

    def _walk(self, selection_set: SelectionSetNode, on: Any, source: Any) -> int:
        total = 0
        for node, parent in self._fields(selection_set, on):
            total += 1
            self.introspected += 1
            if self.introspected > self.max_cost:
                raise _OverLimit
            if node.selection_set is None or parent is None:
                continue
            field = self._field(parent, node.name.value)
            if field is None or field.resolve is None:
                continue
            arguments = {"includeDeprecated": True} if "includeDeprecated" in field.args else {}
            value = field.resolve(source, self._info, **arguments)
            if value is None:
                continue
            items = value if isinstance(get_nullable_type(field.type), GraphQLList) else (value,)
            child = get_named_type(field.type)
            for item in items:
                total += self._walk(node.selection_set, child, item)
        for fragment in self._spreads(selection_set):
            if fragment.name.value in self._visiting:
                continue
            self._visiting.add(fragment.name.value)
            try:
                total += self._walk(fragment.selection_set, self._type(fragment.type_condition.name.value), source)
            finally:
                self._visiting.discard(fragment.name.value)
        return total


# ---- JSON nesting -------------------------------------------------------------------------------------------

class JsonTooDeep(ValueError):
    def __init__(self, limit: int):
        super().__init__(f"the request's JSON is nested deeper than the limit of {limit} levels")
        self.limit = limit


# A JSON string, its closing quote optional so an unterminated one ends the scan instead of being retried
# from every later quote (which would take quadratic time).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def check_json_depth(body: bytes | str, limit: int) -> None:
    """Refuse JSON nested deeper than `limit` before it is parsed (the parser recurses per level).

    Strings are cut out, every bracket is reduced to `[` or `]`, and each pass removes the innermost pairs;
    what is left after `limit` passes is deeper than the limit, or unbalanced (left to the parser to refuse)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    brackets = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return
        brackets = brackets.replace(b"[]", b"")
    if b"[]" in brackets:
        raise JsonTooDeep(limit)
