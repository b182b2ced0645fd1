"""The response's items matched to the Questionnaire's: a tree the checks and enableWhen evaluation walk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from service.validation.context import JSON, objects, text_value
from service.validation.items import ItemFacts, children_of, item_facts

# Deeper nesting than this is not a real form; stopping keeps recursion bounded on hostile input.
MAX_DEPTH = 64


class QuestionnaireIndex:
    """Lookups over the Questionnaire's items: by linkId, each item's ancestors, and each item's facts.

    Built once per Questionnaire and shared by every validation against it (see ``index_for``): nothing in it
    depends on a response."""

    def __init__(self, questionnaire: JSON) -> None:
        self.root_items = [item for _, item in objects(questionnaire.get("item"))]
        self.by_link_id: dict[str, JSON] = {}
        self._parent: dict[int, JSON | None] = {}
        self._facts: dict[int, ItemFacts] = {}
        self.root = item_facts({}, self.root_items)
        self._collect(self.root_items, None, 0)

    def facts(self, item: JSON) -> ItemFacts:
        """The facts of an item of this Questionnaire (worked out on first use)."""
        found = self._facts.get(id(item))
        if found is None:
            found = self._facts[id(item)] = item_facts(item, children_of(item))
        return found

    def _collect(self, items: list[JSON], parent: JSON | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        for item in items:
            self._parent[id(item)] = parent
            link_id = text_value(item.get("linkId"))
            if link_id is not None:
                self.by_link_id.setdefault(link_id, item)
            self._collect(children_of(item), item, depth + 1)

    def parent(self, item: JSON) -> JSON | None:
        return self._parent.get(id(item))

    def ancestors(self, item: JSON) -> list[JSON]:
        """The item's ancestors, outermost first (not including the item)."""
        chain: list[JSON] = []
        current = self.parent(item)
        while current is not None and len(chain) <= MAX_DEPTH:
            chain.append(current)
            current = self.parent(current)
        chain.reverse()
        return chain


@dataclass(eq=False)
class Node:
    """One item of the response (or the response itself, as the root) and the Questionnaire item it answers.

    ``q`` is None for the root and for items whose linkId the Questionnaire does not define.
    """

    data: JSON
    q: JSON | None
    parent: Node | None
    path: str
    link_id: str | None
    depth: int = 0
    misplaced: bool = False
    containers: list[Container] = field(default_factory=list)

    @property
    def answers(self) -> list[tuple[int, JSON]]:
        return list(objects(self.data.get("answer"))) if self.parent is not None else []

    @property
    def has_content(self) -> bool:
        """Whether the item carries anything; an item with only a linkId counts as absent, as in the
        reference validator (form fillers often send every item, answered or not)."""
        if self.parent is None:
            return True
        return bool(self.data.get("answer")) or bool(self.data.get("item"))

    def children(self) -> Iterator[Node]:
        for container in self.containers:
            yield from container.nodes

    def descendants(self) -> Iterator[Node]:
        for child in self.children():
            yield child
            yield from child.descendants()

    def has_answers_below(self) -> bool:
        """Whether this item or anything nested in it has an answer."""
        if self.answers:
            return True
        return any(child.has_answers_below() for child in self.children())


@dataclass(eq=False)
class Container:
    """Where child items live: the response, a group item, or one answer of a question."""

    owner: Node
    data: JSON
    path: str
    facts: ItemFacts  # of the item whose children live here (the Questionnaire's top level for the response)
    nodes: list[Node] = field(default_factory=list)

    @property
    def q_items(self) -> list[JSON]:
        """The Questionnaire items that may appear here."""
        return self.facts.children

    @property
    def siblings(self) -> dict[str | None, JSON]:
        return self.facts.by_link_id


def build_tree(questionnaire_index: QuestionnaireIndex, response: JSON) -> Node:
    root = Node(data=response, q=None, parent=None, path="QuestionnaireResponse", link_id=None)
    root.containers.append(Container(root, response, root.path, questionnaire_index.root))
    _fill(questionnaire_index, root.containers[0], 1)
    return root


def _fill(index: QuestionnaireIndex, container: Container, depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    siblings = container.siblings
    for position, data in objects(container.data.get("item")):
        link_id = text_value(data.get("linkId"))
        q = siblings.get(link_id) if link_id is not None else None
        misplaced = False
        if q is None and link_id is not None and link_id in index.by_link_id:
            q = index.by_link_id[link_id]
            misplaced = True
        node = Node(
            data=data,
            q=q,
            parent=container.owner,
            path=f"{container.path}.item[{position}]",
            link_id=link_id,
            depth=depth,
            misplaced=misplaced,
        )
        container.nodes.append(node)
        if q is None:
            continue
        facts = index.facts(q)
        if facts.kind == "display":
            continue
        if facts.kind == "group":
            node.containers.append(Container(node, data, node.path, facts))
        else:
            for answer_index, answer in objects(data.get("answer")):
                node.containers.append(Container(node, answer, f"{node.path}.answer[{answer_index}]", facts))
        for child in node.containers:
            _fill(index, child, depth + 1)
