"""Evaluates every SDC calculatedExpression and writes the results into the server's copy of the response.

Order, as SDC describes it: the variables in scope first (Questionnaire, then each item down the tree),
then each calculated item depth-first in response order; the whole walk is repeated until no
calculated value changes, so an expression may read a calculated item that comes after it. A cycle
would never settle: after one walk more than there are calculated items, the unsettled items are
left empty and reported.

Submitted values of calculated items are never trusted: they are removed before the first walk and
a submitted value that differs from the computed one is reported as a warning.

Most scores read only the answers people gave, and then one walk is final. So that this common case
costs one walk instead of two, calculated items note whether an expression reads their answers: when
no expression of a walk did, another walk could not change anything and none is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

from service.fhir.issues import Issue
from service.scoring.answers import AnswerTypeError, answer_for, answer_value, describe_answers
from service.scoring.definition import ExpressionDef, ItemDef, QuestionnaireDefinition
from service.scoring.fhirpath import describe, plain
from service.scoring.functions import FhirPathError, SdcFunctions
from service.scoring.scope import Scope, Visit, child_lists

# The items a walk for calculations needs: those with a calculatedExpression and the groups holding them.
HOLDS_CALCULATION = attrgetter("holds_calculation")


def _holds_expressions(item: ItemDef) -> bool:
    return item.holds_calculation or item.holds_flag


class _Reads:
    def __init__(self) -> None:
        self.active = False  # only reads by expressions count, not the calculation's own bookkeeping
        self.seen = False


class _WatchedItem(dict[str, Any]):
    """A calculated item of the response that notes when an expression reads its answers."""

    def __init__(self, item: Mapping[str, Any], reads: _Reads) -> None:
        super().__init__(item)
        self.reads = reads

    def _note(self, key: object) -> None:
        if key == "answer" and self.reads.active:
            self.reads.seen = True

    def __getitem__(self, key: str) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)


class Calculation:
    """One run over one response; ``run`` fills in the calculated items of ``response`` in place."""

    def __init__(self, definition: QuestionnaireDefinition, response: dict[str, Any], sdc: SdcFunctions) -> None:
        self.definition = definition
        self.response = response
        self.scope = Scope(definition, response, sdc, self.report)
        self.errors: list[Issue] = []
        self.submitted_locations: dict[int, str] = {}
        self.created: set[int] = set()
        self.reads = _Reads()

    def report(self, expression: ExpressionDef, reason: str, item: Mapping[str, Any] | None) -> None:
        """Record a failed expression as an error naming the item and the expression."""
        where = f"item {expression.link_id!r}" if expression.link_id else "the Questionnaire"
        what = f"variable %{expression.name}" if expression.kind == "variable" and expression.name else expression.kind
        text = f"The {what} on {where} could not be evaluated: {reason}. Expression: {expression.text}"
        location = self.submitted_locations.get(id(item)) if item is not None else None
        issue = Issue("error", "processing", text, location, expression.link_id)
        if issue not in self.errors:
            self.errors.append(issue)

    def run(self) -> list[Issue]:
        self._watch(self.response)
        # Failures are reported on calculated items, flagged items and the groups holding them: only their
        # places in the response as submitted are needed.
        structure = list(self.scope.walk(variables=False, within=_holds_expressions))
        self.submitted_locations = {id(v.item): v.location for v in structure if v.item is not None}
        submitted = [
            (v.item, v.item_def, v.location, v.item.get("answer"))
            for v in structure
            if v.item is not None and v.item_def is not None and v.item_def.calculated is not None
        ]
        self._create_missing()
        calculated = [v for v in self.scope.walk(variables=False, within=HOLDS_CALCULATION) if _is_calculated(v)]
        for visit in calculated:
            assert visit.item is not None
            visit.item.pop("answer", None)
        rounds = len(calculated) + 1
        changed: list[Visit] = []
        for _ in range(rounds):
            self.errors = []  # only the last walk's failures describe the result
            self.reads.seen = False
            changed = self._walk_once()
            if not changed or not self.reads.seen:
                changed = []
                break
        else:
            for visit in changed:
                assert visit.item is not None
                visit.item.pop("answer", None)
            link_ids = ", ".join(sorted({v.item_def.link_id for v in changed if v.item_def is not None}))
            self.errors.append(
                Issue(
                    "error",
                    "processing",
                    f"Calculated items did not settle after {rounds} evaluations of the form; their "
                    f"calculatedExpressions depend on each other in a cycle: {link_ids}",
                    None,
                    changed[0].item_def.link_id if changed[0].item_def is not None else None,
                )
            )
        self._prune(self.response)
        return self.errors + self._replaced(submitted)

    def _walk_once(self) -> list[Visit]:
        changed = []
        for visit in self.scope.walk(within=HOLDS_CALCULATION):
            if not _is_calculated(visit):
                continue
            assert visit.item is not None and visit.item_def is not None
            self.reads.active = True
            try:
                answers = self._compute(visit, visit.item_def)
            finally:
                self.reads.active = False
            if answers != visit.item.get("answer"):
                if answers:
                    visit.item["answer"] = answers
                else:
                    visit.item.pop("answer", None)
                changed.append(visit)
        return changed

    def _compute(self, visit: Visit, item_def: ItemDef) -> list[dict[str, Any]] | None:
        expression = item_def.calculated
        assert expression is not None
        try:
            values = plain(self.scope.evaluate(expression, visit.focus, visit.env))
        except FhirPathError as exc:
            self.report(expression, str(exc), visit.item)
            return None
        if not values:
            return None  # e.g. too many answers missing: the item gets no value
        if len(values) > 1 and not item_def.repeats:
            shown = ", ".join(describe(value) for value in values[:5])
            self.report(expression, f"it gave {len(values)} values ({shown}) for an item that takes one", visit.item)
            return None
        try:
            return [answer_for(item_def.type, value, item_def.unit) for value in values]
        except AnswerTypeError as exc:
            self.report(expression, f"its value does not fit the item's type {item_def.type!r}: {exc}", visit.item)
            return None

    # -- where the calculated items go ------------------------------------------------------------------

    def _watch(self, parent: dict[str, Any]) -> None:
        calculated = self.definition.calculated_link_ids
        for children in child_lists(parent):
            for index, item in enumerate(children):
                if isinstance(item, dict):
                    if str(item.get("linkId")) in calculated:
                        item = children[index] = _WatchedItem(item, self.reads)
                    self._watch(item)

    def _create_missing(self) -> None:
        """Give every calculated item a place in the response, in Questionnaire order among its siblings."""
        if not any(item.holds_calculation for item in self.definition.items):
            return
        if not isinstance(self.response.get("item"), list):
            self.response["item"] = []
            self.created.add(id(self.response))
        self._create_in(self.definition.items, [self.response["item"]])

    def _create_in(self, definitions: tuple[ItemDef, ...], lists: list[list[Any]]) -> None:
        order = {definition.link_id: index for index, definition in enumerate(definitions)}
        for items in lists:
            for position, definition in enumerate(definitions):
                if not definition.holds_calculation:
                    continue
                present = [i for i in items if isinstance(i, dict) and i.get("linkId") == definition.link_id]
                if not present:
                    new: dict[str, Any] = {"linkId": definition.link_id}
                    if definition.text:
                        new["text"] = definition.text
                    if definition.calculated is not None:
                        new = _WatchedItem(new, self.reads)
                    after = [
                        index
                        for index, item in enumerate(items)
                        if isinstance(item, dict) and order.get(str(item.get("linkId")), -1) > position
                    ]
                    items.insert(after[0] if after else len(items), new)
                    self.created.add(id(new))
                    present = [new]
                if not definition.children:
                    continue
                for item in present:
                    nested = child_lists(item)
                    if not nested and definition.type == "group":
                        item["item"] = []
                        nested = [item["item"]]
                    self._create_in(definition.children, nested)

    def _prune(self, parent: dict[str, Any]) -> None:
        """Drop calculated items left without a value, and the groups created only to hold them."""
        calculated = self.definition.calculated_link_ids
        for children in child_lists(parent):
            kept = []
            for item in children:
                if isinstance(item, dict):
                    self._prune(item)
                    removable = id(item) in self.created or str(item.get("linkId")) in calculated
                    if removable and not item.get("answer") and not item.get("item"):
                        continue
                    if isinstance(item, _WatchedItem):
                        item = dict(item)  # the result is plain JSON again
                kept.append(item)
            children[:] = kept
        if id(parent) in self.created and parent.get("item") == []:
            del parent["item"]

    def _replaced(self, submitted: Sequence[tuple[dict[str, Any], ItemDef | None, str, Any]]) -> list[Issue]:
        warnings = []
        for item, item_def, location, old in submitted:
            if not isinstance(old, list) or not old or item_def is None:
                continue
            new = item.get("answer") if item.get("answer") else None
            if [answer_value(a) for a in old if isinstance(a, Mapping)] == [answer_value(a) for a in new or []]:
                continue
            if new:
                text = (
                    f"The submitted value of calculated item {item_def.link_id!r} ({describe_answers(old)}) "
                    f"differs from the value computed from the answers ({describe_answers(new)}) and was replaced"
                )
            else:
                text = (
                    f"The submitted value of calculated item {item_def.link_id!r} ({describe_answers(old)}) "
                    "was removed: it cannot be computed from the answers"
                )
            warnings.append(Issue("warning", "value", text, f"{location}.answer[0]", item_def.link_id))
        return warnings


def _is_calculated(visit: Visit) -> bool:
    return visit.item is not None and visit.item_def is not None and visit.item_def.calculated is not None
