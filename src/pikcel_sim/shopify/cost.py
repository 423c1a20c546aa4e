"""Calculated query cost, roughly by Shopify's rules.

Scalars and enums cost 0, objects 1, a connection 2 plus its page size times the cost
of one node, a mutation field 10. The requested cost uses `first`/`last`; the actual
cost walks the response and counts what came back.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

MUTATION_COST = 10
DEFAULT_PAGE = 10

Composite = GraphQLObjectType | GraphQLInterfaceType


class CostCalculator:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.variables = variables or {}
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    # ---- field collection ----------------------------------------------------------

    def _fields(
        self, parent: Composite, selection_set: SelectionSetNode | None
    ) -> list[tuple[FieldNode, Composite]]:
        out: list[tuple[FieldNode, Composite]] = []
        if selection_set is None:
            return out
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                out.append((selection, parent))
            elif isinstance(selection, InlineFragmentNode):
                owner = parent
                if selection.type_condition is not None:
                    named = self.schema.get_type(selection.type_condition.name.value)
                    if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                        owner = named
                out.extend(self._fields(owner, selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    continue
                named = self.schema.get_type(fragment.type_condition.name.value)
                owner = (
                    named if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) else parent
                )
                out.extend(self._fields(owner, fragment.selection_set))
        return out

    def _arg(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return value_from_ast_untyped(argument.value, self.variables)
        return None

    @staticmethod
    def _field_type(owner: Composite, node: FieldNode) -> Any:
        definition = owner.fields.get(node.name.value)
        return None if definition is None else get_named_type(definition.type)

    # ---- requested ------------------------------------------------------------------

    def requested(self) -> int:
        root = (
            self.schema.mutation_type
            if self.operation.operation == OperationType.MUTATION
            else self.schema.query_type
        )
        if root is None:
            return 0
        if self.operation.operation == OperationType.MUTATION:
            return MUTATION_COST * sum(
                1
                for node, _ in self._fields(root, self.operation.selection_set)
                if not node.name.value.startswith("__")
            )
        return self._selection_cost(root, self.operation.selection_set)

    def _selection_cost(self, parent: Composite, selection_set: SelectionSetNode | None) -> int:
        total = 0
        for node, owner in self._fields(parent, selection_set):
            if node.name.value.startswith("__"):
                continue
            named = self._field_type(owner, node)
            if named is None or is_leaf_type(named):
                continue
            if named.name.endswith("Connection"):
                size = self._arg(node, "first") or self._arg(node, "last") or DEFAULT_PAGE
                total += 2 + int(size) * self._node_cost(named, node.selection_set)
            elif isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
                total += 1 + self._selection_cost(named, node.selection_set)
            else:  # unions are not in the simulated schema
                total += 1
        return total

    def _node_cost(self, connection: Composite, selection_set: SelectionSetNode | None) -> int:
        """Cost of one node of a connection (the edge/nodes selections, whichever is more)."""
        best = 0
        for node, owner in self._fields(connection, selection_set):
            name = node.name.value
            if name == "nodes":
                named = self._field_type(owner, node)
                best = max(best, 1 + self._selection_cost(named, node.selection_set))
            elif name == "edges":
                edge_type = self._field_type(owner, node)
                for inner, inner_owner in self._fields(edge_type, node.selection_set):
                    if inner.name.value == "node":
                        named = self._field_type(inner_owner, inner)
                        best = max(best, 1 + self._selection_cost(named, inner.selection_set))
        return best

    # ---- actual ----------------------------------------------------------------------

    def actual(self, data: dict[str, Any] | None) -> int:
        if self.operation.operation == OperationType.MUTATION:
            return self.requested()
        root = self.schema.query_type
        if root is None or data is None:
            return 0
        return self._actual_cost(root, self.operation.selection_set, data)

    def _actual_cost(
        self, parent: Composite, selection_set: SelectionSetNode | None, data: Any
    ) -> int:
        if not isinstance(data, dict):
            return 0
        total = 0
        for node, owner in self._fields(parent, selection_set):
            if node.name.value.startswith("__"):
                continue
            named = self._field_type(owner, node)
            if named is None or is_leaf_type(named):
                continue
            key = node.alias.value if node.alias else node.name.value
            value = data.get(key)
            if value is None:
                continue
            if named.name.endswith("Connection"):
                total += 2 + self._actual_connection(named, node.selection_set, value)
            elif isinstance(value, list):
                total += sum(
                    1 + self._actual_cost(named, node.selection_set, item)
                    for item in value
                    if item is not None
                )
            else:
                total += 1 + self._actual_cost(named, node.selection_set, value)
        return total

    def _actual_connection(
        self, connection: Composite, selection_set: SelectionSetNode | None, value: Any
    ) -> int:
        from_nodes = from_edges = 0
        for node, owner in self._fields(connection, selection_set):
            key = node.alias.value if node.alias else node.name.value
            items = value.get(key) if isinstance(value, dict) else None
            if not isinstance(items, list):
                continue
            if node.name.value == "nodes":
                named = self._field_type(owner, node)
                from_nodes = sum(
                    1 + self._actual_cost(named, node.selection_set, item) for item in items
                )
            elif node.name.value == "edges":
                edge_type = self._field_type(owner, node)
                from_edges = sum(
                    self._actual_cost(edge_type, node.selection_set, item) for item in items
                )
        return max(from_nodes, from_edges)
