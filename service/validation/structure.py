"""The shape of the response against the Questionnaire: known linkIds in the right place and order,
nesting (groups in item, question children in answer.item, qrs-1), repetition (qrs-2, repeats,
minOccurs/maxOccurs), required items, answers to disabled items, item text, and item constraints."""

from __future__ import annotations

from collections.abc import Mapping

from service.fhir.issues import Severity
from service.validation import answers
from service.validation.context import (
    EXT_CONSTRAINT,
    JSON,
    Context,
    describe,
    extensions,
    text_value,
)
from service.validation.enable_when import Enablement, and3
from service.validation.expressions import Expressions
from service.validation.items import item_type
from service.validation.tree import MAX_DEPTH, Container, Node, QuestionnaireIndex
from service.validation.value_sets import ValueSets


class Walker:
    def __init__(
        self,
        context: Context,
        index: QuestionnaireIndex,
        enablement: Enablement,
        expressions: Expressions,
        value_sets: ValueSets,
    ) -> None:
        self._context = context
        self._index = index
        self._enablement = enablement
        self._expressions = expressions
        self._value_sets = value_sets

    def run(self, root: Node) -> None:
        self._constraints(root, self._context.questionnaire, "The Questionnaire")
        for container in root.containers:
            self._container(container, True)

    def _container(self, container: Container, enabled: bool | None) -> None:
        self._shape(container)
        positions = container.facts.positions
        last_position, last_node = -1, None
        for node in container.nodes:
            if node.link_id is None:
                self._context.add("error", "required", "An item has no linkId", node.path)
                continue
            if node.q is None:
                where = (
                    ""
                    if container.owner.parent is None
                    else f" under item {describe(container.owner.q, container.owner.link_id)}"
                )
                self._context.add(
                    "error",
                    "not-found",
                    f"Item '{node.link_id}' is not defined in the Questionnaire{where}",
                    node.path,
                    node.link_id,
                )
                continue
            if node.misplaced:
                parent = self._index.parent(node.q)
                home = f"under item {describe(parent)}" if parent is not None else "at the top level"
                self._context.add(
                    "error",
                    "structure",
                    f"Item {describe(node.q, node.link_id)} is in the wrong place: the Questionnaire has it {home}",
                    node.path,
                    node.link_id,
                )
            else:
                position = positions[id(node.q)]
                if position < last_position and last_node is not None:
                    self._context.add(
                        "error",
                        "structure",
                        f"Item {describe(node.q, node.link_id)} is out of order: the Questionnaire puts it "
                        f"before item {describe(last_node.q, last_node.link_id)}",
                        node.path,
                        node.link_id,
                    )
                elif position > last_position:
                    last_position, last_node = position, node
            self._node(node, enabled)
        placed: dict[int, list[Node]] = {}
        for node in container.nodes:
            if node.q is not None and not node.misplaced:
                placed.setdefault(id(node.q), []).append(node)
        for q_item in container.q_items:
            self._occurrences(container, q_item, placed.get(id(q_item), []), enabled)

    def _shape(self, container: Container) -> None:
        """Elements that are not lists of objects cannot be items or answers at all."""
        elements = [("item", container.data, container.path)]
        elements += [("answer", node.data, node.path) for node in container.nodes]
        for name, data, path in elements:
            value = data.get(name)
            if value is None:
                continue
            if not isinstance(value, list):
                self._context.add("error", "structure", f"{path}.{name} is not a list", f"{path}.{name}")
                continue
            for position, entry in enumerate(value):
                if not isinstance(entry, Mapping):
                    self._context.add(
                        "error",
                        "structure",
                        f"{path}.{name}[{position}] is not an object",
                        f"{path}.{name}[{position}]",
                    )

    def _node(self, node: Node, enabled: bool | None) -> None:
        q_item = node.q
        assert q_item is not None
        facts = self._index.facts(q_item)
        label = facts.label if facts.link_id == node.link_id else describe(q_item, node.link_id)
        own = self._enablement.own(q_item, node.parent, node) if enabled is not False and node.parent else False
        # Only the outermost disabled item with answers is reported: everything inside it is disabled too.
        if enabled is True and own is False and node.has_answers_below():
            self._context.add(
                "error",
                "business-rule",
                f"Item {label} is not enabled (its enableWhen conditions are not met) but has answers",
                node.path,
                node.link_id,
            )
        self._nesting(node, label)
        self._text(node, q_item, label)
        if facts.kind not in ("group", "display"):
            answers.check_answers(self._context, self._value_sets, node, facts, label)
        effective = and3(enabled, own)
        if effective is not False:
            self._constraints(node, q_item, f"Item {label}")
        if node.depth >= MAX_DEPTH:
            self._context.add(
                "error",
                "structure",
                f"Item {label} is nested too deeply to be checked",
                node.path,
                node.link_id,
            )
            return
        for container in node.containers:
            self._container(container, effective)

    def _nesting(self, node: Node, label: str) -> None:
        kind = item_type(node.q)
        has_answer, has_item = bool(node.data.get("answer")), bool(node.data.get("item"))
        problem: tuple[str, str] | None = None
        if has_answer and has_item:
            problem = (
                "invariant",
                f"Item {label} has both answer and item (qrs-1: Nested item can't be beneath both item and answer)",
            )
        elif kind == "display" and (has_answer or has_item):
            problem = ("structure", f"Item {label} is display text and cannot have answers or nested items")
        elif kind == "group" and has_answer:
            problem = ("structure", f"Item {label} is a group: its content goes in item, not answer")
        elif kind != "group" and has_item:
            problem = (
                "structure",
                f"Item {label} is a question: items nested in it go in answer.item, not item",
            )
        if problem is not None:
            self._context.add("error", problem[0], problem[1], node.path, node.link_id)

    def _text(self, node: Node, q_item: JSON, label: str) -> None:
        given = node.data.get("text")
        if not isinstance(given, str):
            return
        expected = text_value(q_item.get("text"))
        if expected is None or " ".join(given.split()) != " ".join(expected.split()):
            shown = f"'{expected}'" if expected is not None else "none"
            self._context.add(
                "warning",
                "business-rule",
                f"Item {label} has the text '{given}' where the Questionnaire's text is {shown}",
                node.path,
                node.link_id,
            )

    def _constraints(self, node: Node, element: JSON, owner: str) -> None:
        declared = (
            self._index.facts(element).constraints if node.parent is not None else extensions(element, EXT_CONSTRAINT)
        )
        for ext in declared:
            parts = {part.get("url"): part for part in ext.get("extension") or [] if isinstance(part, Mapping)}
            key = text_value((parts.get("key") or {}).get("valueId")) or "?"
            expression = text_value((parts.get("expression") or {}).get("valueString"))
            human = text_value((parts.get("human") or {}).get("valueString")) or expression or key
            severity: Severity = "warning" if (parts.get("severity") or {}).get("valueCode") == "warning" else "error"
            if expression is None:
                continue
            q_item = element if node.parent is not None else None
            holds = self._expressions.boolean(expression, node, q_item, f"constraint {key}", empty=True)
            if holds is False:
                self._context.add(
                    severity,
                    "invariant",
                    f"{owner} does not meet constraint {key}: {human}",
                    node.path,
                    node.link_id,
                )

    def _occurrences(self, container: Container, q_item: JSON, placed: list[Node], enabled: bool | None) -> None:
        """Repetition and cardinality of one Questionnaire item within one container."""
        present = [node for node in placed if node.has_content]
        facts = self._index.facts(q_item)
        kind, link_id, label = facts.kind, facts.link_id, facts.label
        if len(present) > 1 and kind != "group":
            for extra in present[1:]:
                self._context.add(
                    "error",
                    "invariant",
                    f"Item {label} appears {len(present)} times here; its answers belong in one item "
                    "(qrs-2: Repeated answers are combined in the answers array of a single item)",
                    extra.path,
                    link_id,
                )
        elif len(present) > 1 and q_item.get("repeats") is not True:
            for extra in present[1:]:
                self._context.excess(
                    "structure",
                    f"Group {label} appears {len(present)} times here but does not repeat",
                    extra.path,
                    link_id,
                )
        if kind == "display" or enabled is not True:
            return
        if self._enablement.own(q_item, container.owner, present[0] if present else None) is not True:
            return
        where = placed[0].path if placed else container.path
        count = len(present) if kind == "group" else sum(len(node.answers) for node in present)
        minimum = facts.min_occurs or 0
        maximum = facts.max_occurs
        if kind == "group":
            answered = any(node.has_answers_below() for node in present)
            if q_item.get("required") is True and not answered:
                self._context.missing(
                    "required", f"Group {label} is required but none of its items is answered", where, link_id
                )
            elif count < minimum:
                self._context.missing(
                    "required",
                    f"Group {label} must appear at least {minimum} times; it appears {count}",
                    where,
                    link_id,
                )
        else:
            if count == 0 and (q_item.get("required") is True or minimum >= 1):
                wanted = "an answer" if minimum <= 1 else f"at least {minimum} answers"
                self._context.missing("required", f"Item {label} requires {wanted}", where, link_id)
            elif 0 < count < minimum:
                self._context.missing(
                    "required",
                    f"Item {label} requires at least {minimum} answers; it has {count}",
                    where,
                    link_id,
                )
            if count > 1 and q_item.get("repeats") is not True:
                self._context.excess(
                    "structure", f"Item {label} does not repeat but has {count} answers", where, link_id
                )
                return
        if maximum is not None and count > maximum:
            noun = "times" if kind == "group" else "answers"
            self._context.excess(
                "structure", f"Item {label} allows at most {maximum} {noun}; it has {count}", where, link_id
            )
