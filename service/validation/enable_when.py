"""Which items are enabled: enableWhen (every operator and answer type), enableBehavior, and the SDC
enableWhenExpression.

Results are three-valued: True, False, or None when the Questionnaire's own logic cannot be evaluated
(an unknown question, a failing expression); None means "neither require nor forbid answers".
When the question an enableWhen refers to occurs more than once, FHIR asks for the "nearest"
occurrence; that is read as the HL7 reference validator reads it: the occurrences inside the
innermost repetition of the item both share (the question itself, when it encloses the item), else
anywhere in the response. Answers of disabled items do not count ("as though the item is not
valued", R4 Questionnaire.item.enableWhen).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from service.validation.context import (
    JSON,
    Context,
    describe,
    objects,
    text_value,
    value_keys,
)
from service.validation.expressions import Expressions, expression_text
from service.validation.primitives import date_range, time_seconds, to_decimal
from service.validation.tree import Node, QuestionnaireIndex
from service.validation.units import Relation, compare

_OPERATORS = frozenset({"exists", "=", "!=", ">", "<", ">=", "<="})
_UNORDERED = 2  # equal-or-not only (codes, booleans, references)


def and3(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


class Enablement:
    def __init__(self, context: Context, index: QuestionnaireIndex, expressions: Expressions, root: Node) -> None:
        self._context = context
        self._index = index
        self._expressions = expressions
        self._root = root
        self._own: dict[tuple[int, int, int], bool | None] = {}
        self._node: dict[int, bool | None] = {}
        self._busy: set[tuple[int, int, int]] = set()
        self._found: dict[tuple[int, str], list[Node]] = {}

    def node_enabled(self, node: Node) -> bool | None:
        """Whether this response item is enabled, its ancestors included."""
        key = id(node)
        if key not in self._node:
            if node.parent is None or node.q is None:
                result: bool | None = True if node.parent is None else self.node_enabled(node.parent)
            else:
                result = and3(self.node_enabled(node.parent), self.own(node.q, node.parent, node))
            self._node[key] = result
        return self._node[key]

    def own(self, q_item: JSON, parent: Node, occurrence: Node | None = None) -> bool | None:
        """The item's own conditions, evaluated where it sits (or would sit) under ``parent``."""
        facts = self._index.facts(q_item)
        expression = facts.enable_when_expression
        if expression is None and not facts.has_enable_when:
            return True
        key = (id(q_item), id(parent), id(occurrence) if expression is not None else 0)
        if key in self._own:
            return self._own[key]
        if key in self._busy:
            self._context.once(
                "warning",
                "processing",
                f"The enable conditions of item {describe(q_item)} depend on themselves; they were not applied",
                parent.path,
                text_value(q_item.get("linkId")),
            )
            return None
        self._busy.add(key)
        try:
            if expression is not None:
                result = self._expression(q_item, expression[1], occurrence or parent)
            else:
                result = self._conditions(q_item, parent)
        finally:
            self._busy.discard(key)
        self._own[key] = result
        return result

    def _expression(self, q_item: JSON, value: Any, focus: Node) -> bool | None:
        link_id = text_value(q_item.get("linkId"))
        if q_item.get("enableWhen"):
            self._context.once(
                "warning",
                "processing",
                f"Item {describe(q_item)} has both enableWhen and an enableWhenExpression; only the "
                "expression was used",
                focus.path,
                link_id,
            )
        text, problem = expression_text(value)
        if text is None:
            self._context.once(
                "warning",
                "not-supported",
                f"The enableWhenExpression of item {describe(q_item)} {problem}; it was not applied",
                focus.path,
                link_id,
            )
            return None
        return self._expressions.boolean(text, focus, q_item, "enableWhenExpression")

    def _conditions(self, q_item: JSON, parent: Node) -> bool | None:
        conditions = [condition for _, condition in objects(q_item.get("enableWhen"))]
        results = [self._condition(q_item, condition, parent) for condition in conditions]
        behaviour = q_item.get("enableBehavior")
        if behaviour not in ("all", "any"):
            if len(results) > 1:
                self._context.once(
                    "warning",
                    "processing",
                    f"Item {describe(q_item)} has several enableWhen conditions but no enableBehavior "
                    "(que-12); they were combined with 'any'",
                    parent.path,
                    text_value(q_item.get("linkId")),
                )
            behaviour = "any"
        if behaviour == "all":
            outcome: bool | None = True
            for result in results:
                outcome = and3(outcome, result)
            return outcome
        if any(result is True for result in results):
            return True
        return None if any(result is None for result in results) else False

    def _design_problem(self, q_item: JSON, parent: Node, text: str) -> None:
        self._context.once(
            "warning",
            "processing",
            f"An enableWhen of item {describe(q_item)} {text}",
            parent.path,
            text_value(q_item.get("linkId")),
        )

    def _condition(self, q_item: JSON, condition: JSON, parent: Node) -> bool | None:
        question = text_value(condition.get("question"))
        operator = condition.get("operator")
        target = self._index.by_link_id.get(question) if question is not None else None
        if target is None:
            self._design_problem(q_item, parent, f"refers to {question!r}, which the Questionnaire does not define")
            return None
        if not isinstance(operator, str) or operator not in _OPERATORS:
            self._design_problem(q_item, parent, f"has the unknown operator {operator!r}")
            return None
        expected_keys = [key for key in condition if key.startswith("answer") and len(key) > 6]
        if len(expected_keys) != 1:
            self._design_problem(q_item, parent, "needs exactly one answer[x]")
            return None
        expected_key = expected_keys[0]
        expected = condition[expected_key]
        answers = self._answers(target, q_item, parent)
        if operator == "exists":
            if not isinstance(expected, bool):
                self._design_problem(q_item, parent, "uses 'exists' without answerBoolean (que-7)")
                return None
            return bool(answers) == expected
        relations = [relate(key, value, expected_key, expected) for key, value in answers]
        if answers and all(relation is None for relation in relations):
            self._design_problem(
                q_item, parent, f"compares {expected_key} with answers of another type; they never compare equal"
            )
        if operator == "=":
            return any(relation == 0 for relation in relations)
        if operator == "!=":
            return not any(relation == 0 for relation in relations)
        accepted = {">": (1,), "<": (-1,), ">=": (0, 1), "<=": (-1, 0)}[str(operator)]
        return any(relation in accepted for relation in relations)

    def _answers(self, target: JSON, source: JSON, parent: Node) -> list[tuple[str, Any]]:
        """The values answered to ``target`` that an enableWhen of ``source`` placed under ``parent`` sees."""
        source_chain = [id(item) for item in self._index.ancestors(source)]
        scope: Node = self._root
        if id(target) in source_chain:
            # The question is an ancestor of the item: its own occurrence on the way up.
            holder = _up_to(parent, target)
            return _values(holder) if holder is not None else []
        target_chain = {id(item) for item in self._index.ancestors(target)}
        shared = [item for item in self._index.ancestors(source) if id(item) in target_chain]
        if shared:
            found = _up_to(parent, shared[-1])
            scope = found if found is not None else self._root
        values: list[tuple[str, Any]] = []
        for node in self._occurrences(scope, target):
            if self.node_enabled(node) is not False:
                values.extend(_values(node))
        return values

    def _occurrences(self, scope: Node, target: JSON) -> list[Node]:
        link_id = text_value(target.get("linkId")) or ""
        key = (id(scope), link_id)
        if key not in self._found:
            self._found[key] = [node for node in scope.descendants() if node.link_id == link_id]
        return self._found[key]


def _up_to(node: Node | None, q_item: JSON) -> Node | None:
    while node is not None and node.q is not q_item:
        node = node.parent
    return node


def _values(node: Node) -> list[tuple[str, Any]]:
    values = []
    for _, answer in node.answers:
        keys = value_keys(answer)
        if len(keys) == 1:
            values.append((keys[0], answer[keys[0]]))
    return values


def _sign(a: Decimal, b: Decimal) -> int:
    return -1 if a < b else (1 if a > b else 0)


def relate(actual_key: str, actual: Any, expected_key: str, expected: Any) -> int | None:
    """-1/0/1 when the answer orders against the enableWhen answer, 0/2 (equal/different) when they can
    only be equal or not, None when they cannot be compared."""
    actual_kind, expected_kind = actual_key[5:], expected_key[6:]
    if actual_kind == "Coding" and expected_kind in ("String", "Integer", "Decimal") and isinstance(actual, Mapping):
        # Several published forms (the SDC enableWhen test form among them) compare a coded answer
        # with answerString / answerInteger / answerDecimal meaning its code.
        actual_kind, actual = (
            ("String", actual.get("code")) if expected_kind == "String" else ("Decimal", actual.get("code"))
        )
    numeric = {"Integer", "Decimal"}
    if actual_kind in numeric and expected_kind in numeric:
        a, b = to_decimal(actual), to_decimal(expected)
        return None if a is None or b is None else _sign(a, b)
    if actual_kind in ("String", "Uri") and expected_kind == "String":
        if not isinstance(actual, str) or not isinstance(expected, str):
            return None
        return -1 if actual < expected else (1 if actual > expected else 0)
    if actual_kind in ("Date", "DateTime") and expected_kind in ("Date", "DateTime"):
        return _relate_ranges(date_range(actual, with_time=True), date_range(expected, with_time=True))
    if actual_kind == "Time" and expected_kind == "Time":
        a, b = time_seconds(actual), time_seconds(expected)
        return None if a is None or b is None else _sign(a, b)
    if actual_kind != expected_kind:
        return None
    if actual_kind == "Boolean":
        return (
            None
            if not isinstance(actual, bool) or not isinstance(expected, bool)
            else (0 if actual == expected else _UNORDERED)
        )
    if actual_kind == "Coding" and isinstance(actual, Mapping) and isinstance(expected, Mapping):
        return 0 if codings_equal(actual, expected) else _UNORDERED
    if actual_kind == "Quantity":
        relation = compare(actual, expected)
        return relation.value if relation in (Relation.LESS, Relation.EQUAL, Relation.GREATER) else None
    if actual_kind == "Reference" and isinstance(actual, Mapping) and isinstance(expected, Mapping):
        same = actual.get("reference") is not None and actual.get("reference") == expected.get("reference")
        return 0 if same else _UNORDERED
    return None


def codings_equal(a: JSON, b: JSON) -> bool:
    """Same code, and same system unless one of them leaves the system out."""
    code_a, code_b = text_value(a.get("code")), text_value(b.get("code"))
    if code_a is None or code_a != code_b:
        return False
    system_a, system_b = text_value(a.get("system")), text_value(b.get("system"))
    return system_a is None or system_b is None or system_a == system_b


def _relate_ranges(a: Any, b: Any) -> int | None:
    if a is None or b is None:
        return None
    if a == b:
        return 0
    if a[1] < b[0]:
        return -1
    if a[0] > b[1]:
        return 1
    return None  # overlapping values of different precision: FHIRPath leaves this undecided
