"""FHIRPath over one QuestionnaireResponse as SDC evaluates it, for the rest of the service.

Validation evaluates enableWhenExpression, questionnaire-constraint and variable expressions here, so
every expression the service runs meets one engine: the same syntax errors, the same weight(),
ordinal() and answers(), the same aggregates and rounding as scoring.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from service.scoring.budget import Budget
from service.scoring.extensions import as_list, json_copy
from service.scoring.fhirpath import CompiledExpression, compile_expression, evaluate, item_node
from service.scoring.functions import FhirPathError
from service.scoring.scope import ROOT
from service.scoring.weights import AnswerWeights, Terminology

_STEP = re.compile(r"(item|answer)\[(\d+)\]")


class ResponseEvaluator:
    """Evaluates FHIRPath over private copies of one Questionnaire and one response (neither is changed).

    Every evaluation sees ``%resource`` and ``%rootResource`` (the response), ``%questionnaire``,
    ``%context`` (the response element at ``location``, which is also the expression's input),
    ``%qitem`` (the Questionnaire item given, else empty) and the caller's ``variables``. weight(),
    ordinal() and answers() read the answers of this response and the answer options, contained value
    sets and code systems of this Questionnaire, plus the ``terminology`` given. All the evaluations
    spend one budget (``budget.py``): together they may take only so long.
    """

    # The names every evaluation defines itself; a caller's variable with one of them is not seen.
    ENVIRONMENT = ("resource", "rootResource", "questionnaire", "qitem", "context")

    def __init__(
        self,
        questionnaire: Mapping[str, Any],
        response: Mapping[str, Any],
        *,
        terminology: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.response: dict[str, Any] = json_copy(response)
        self.questionnaire: dict[str, Any] = json_copy(questionnaire)
        self._sdc = AnswerWeights(
            self.response,
            _items_by_link_id(self.questionnaire),
            Terminology(as_list(self.questionnaire.get("contained"))),
            Terminology(terminology),
        )
        self._q_items: dict[int, tuple[Mapping[str, Any], Any]] = {}
        self._budget = Budget()

    def evaluate(
        self,
        expression: str | CompiledExpression,
        location: str = ROOT,
        *,
        qitem: Mapping[str, Any] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """The engine's items: pass them on as variables as they are; ``plain`` turns them into values.

        ``location`` names the focus as issues do: ``QuestionnaireResponse`` or one of its items, e.g.
        ``QuestionnaireResponse.item[1].answer[0].item[2]``. ``qitem`` is the caller's Questionnaire
        item; the expression sees a copy. Raises FhirPathError when the expression does not parse or
        fails, and when the response has no item at ``location``.
        """
        compiled = compile_expression(expression) if isinstance(expression, str) else expression
        focus = self._focus(location)
        env = {
            **(variables or {}),
            "resource": self.response,
            "rootResource": self.response,
            "questionnaire": self.questionnaire,
            "qitem": self._q_item(qitem),
            "context": focus,
        }
        return evaluate(compiled, focus, env, self._sdc, self._budget)

    def _focus(self, location: str) -> Any:
        if location == ROOT:
            return self.response
        first, _, rest = location.partition(".")
        node: Any = self.response if first == ROOT and rest else None
        name = None
        for step in rest.split("."):
            match = _STEP.fullmatch(step)
            children = node.get(match.group(1)) if match is not None and isinstance(node, Mapping) else None
            if match is None or not isinstance(children, list) or int(match.group(2)) >= len(children):
                node = None
                break
            name, node = match.group(1), children[int(match.group(2))]
        if name != "item" or not isinstance(node, Mapping):
            raise FhirPathError(f"the response has no item at {location}")
        return item_node(node, location)

    def _q_item(self, item: Mapping[str, Any] | None) -> Any:
        if item is None:
            return None
        found = self._q_items.get(id(item))
        if found is None or found[0] is not item:
            found = self._q_items[id(item)] = (item, json_copy(item))
        return found[1]


def _items_by_link_id(questionnaire: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The Questionnaire's items by linkId (the first in document order, should a linkId repeat)."""
    found: dict[str, Mapping[str, Any]] = {}
    pending = list(reversed(as_list(questionnaire.get("item"))))
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            if isinstance(item.get("linkId"), str):
                found.setdefault(item["linkId"], item)
            pending.extend(reversed(as_list(item.get("item"))))
    return found
