"""Walks a response alongside its Questionnaire, giving each item the FHIRPath environment in scope there.

The environment of an item holds ``%resource``, ``%questionnaire``, ``%qitem``, ``%context`` and every
SDC ``variable`` declared on the Questionnaire, on the item's ancestors and on the item itself, each
evaluated in order (so a variable may use the ones declared before it) with its own element as context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from service.scoring.budget import Budget
from service.scoring.definition import FHIRPATH, ExpressionDef, ItemDef, QuestionnaireDefinition
from service.scoring.fhirpath import evaluate, item_node
from service.scoring.functions import FhirPathError, SdcFunctions

ROOT = "QuestionnaireResponse"

# Reports a failed expression: (the expression, why it failed, the response item it was evaluated on).
ReportFailure = Callable[[ExpressionDef, str, Mapping[str, Any] | None], None]


class Environment:
    """The ``%`` variables in scope at one place, evaluated on first use and then kept.

    Only what is asked for is evaluated: the variables of an item nobody reads from (no calculated
    item or safety flag at or below it) cost nothing.
    """

    __slots__ = ("_scope", "_parent", "_extra", "_variables", "_visit", "_pending", "_value")

    def __init__(
        self,
        scope: Scope,
        parent: Environment | None,
        extra: Mapping[str, Any],
        variables: Sequence[ExpressionDef],
        visit: Visit,
    ) -> None:
        self._scope = scope
        self._parent = parent
        self._extra = extra
        self._variables = variables
        self._visit = visit
        self._pending = True
        self._value: dict[str, Any] = {}

    def get(self) -> Mapping[str, Any]:
        if self._pending:
            self._pending = False  # asked again while being built: what there is so far (nothing)
            self._value = self._scope.build_environment(self._parent, self._extra, self._variables, self._visit)
        return self._value


_UNSET: Any = object()


class Visit:
    """One place in the response: the root (``item_def`` None) or an instance of a Questionnaire item.

    ``item`` is None for the root, and for an item the response does not contain (walks that ask for
    absent items see them with an empty ``%context`` and an empty ``location``). ``focus`` is what
    expressions evaluated here start from (the response, or the item as the engine's node).
    """

    __slots__ = ("item_def", "item", "location", "environment", "_focus")

    def __init__(self, item_def: ItemDef | None, item: dict[str, Any] | None, location: str, focus: Any) -> None:
        self.item_def = item_def
        self.item = item
        self.location = location
        self._focus = focus
        self.environment: Environment

    @property
    def focus(self) -> Any:
        if self._focus is _UNSET:  # the item's node, made when first needed (most visits never need it)
            self._focus = item_node(self.item, self.location) if self.item is not None else []
        return self._focus

    @property
    def env(self) -> Mapping[str, Any]:
        return self.environment.get()


def containers(item: Mapping[str, Any], location: str) -> list[tuple[list[Any], str]]:
    """The lists of child items of a response item: under ``item`` and under each ``answer``."""
    found: list[tuple[list[Any], str]] = []
    children = item.get("item")
    if isinstance(children, list):
        found.append((children, location))
    answers = item.get("answer")
    if isinstance(answers, list):
        for index, answer in enumerate(answers):
            nested = answer.get("item") if type(answer) is dict or isinstance(answer, Mapping) else None
            if isinstance(nested, list):
                found.append((nested, f"{location}.answer[{index}]"))
    return found


def child_lists(item: Mapping[str, Any]) -> list[list[Any]]:
    """``containers`` without the locations."""
    found: list[list[Any]] = []
    children = item.get("item")
    if isinstance(children, list):
        found.append(children)
    answers = item.get("answer")
    if isinstance(answers, list):
        for answer in answers:
            nested = answer.get("item") if type(answer) is dict or isinstance(answer, Mapping) else None
            if isinstance(nested, list):
                found.append(nested)
    return found


class Scope:
    """Evaluates expressions over one response (a private copy) for one Questionnaire definition.

    All of them spend one budget (``budget.py``): together they may take only so long.
    """

    def __init__(
        self,
        definition: QuestionnaireDefinition,
        response: dict[str, Any],
        sdc: SdcFunctions,
        report: ReportFailure,
    ) -> None:
        self.definition = definition
        self.response = response
        self.sdc = sdc
        self.report = report
        self.budget = Budget()

    def evaluate(self, expression: ExpressionDef, focus: Any, env: Mapping[str, Any]) -> list[Any]:
        """The engine's result; raises FhirPathError (also for an expression that did not compile)."""
        if expression.compiled is None:
            raise FhirPathError(expression.error or "the expression did not compile")
        return evaluate(expression.compiled, focus, env, self.sdc, self.budget)

    def build_environment(
        self,
        parent: Environment | None,
        extra: Mapping[str, Any],
        variables: Sequence[ExpressionDef],
        visit: Visit,
    ) -> dict[str, Any]:
        focus = visit.focus
        scope = {**(parent.get() if parent is not None else {}), **extra, "context": focus}
        for variable in variables:
            if not variable.name:
                self.report(variable, "the variable has no name", visit.item)
                continue
            if variable.language != FHIRPATH:
                scope[variable.name] = []  # e.g. an x-fhir-query variable for pre-population: no value here
                continue
            try:
                scope[variable.name] = self.evaluate(variable, focus, scope)
            except FhirPathError as exc:
                self.report(variable, str(exc), visit.item)
                scope[variable.name] = []  # dependants see "no value" rather than an unknown variable
        return scope

    def walk(
        self,
        *,
        variables: bool = True,
        include_absent: bool = False,
        within: Callable[[ItemDef], bool] | None = None,
    ) -> Iterator[Visit]:
        """Visit the root, then every item depth-first in response order.

        The walk is lazy: what a consumer writes into an item before asking for the next visit is seen
        by everything evaluated after it. ``variables=False`` leaves the SDC variables out (for walks
        that only look at the structure). ``within`` leaves out the items (and what is below them) whose
        definition it rejects, e.g. those that hold no calculated item.
        """
        base = {"resource": self.response, "questionnaire": self.definition.source}
        root = Visit(None, None, ROOT, self.response)
        root.environment = Environment(self, None, base, self.definition.variables if variables else (), root)
        yield root
        items = self.response.get("item")
        found = [(items, ROOT)] if isinstance(items, list) else []
        definition = self.definition
        yield from self._children(
            definition.items, definition.item_index, found, root.environment, variables, include_absent, within
        )

    def _children(
        self,
        definitions: tuple[ItemDef, ...],
        index: Mapping[str, ItemDef],
        found: list[tuple[list[Any], str]],
        env: Environment,
        variables: bool,
        include_absent: bool,
        within: Callable[[ItemDef], bool] | None,
    ) -> Iterator[Visit]:
        seen: set[str] = set()
        for items, prefix in found:
            for position, item in enumerate(items):
                definition = index.get(str(item.get("linkId"))) if isinstance(item, dict) else None
                if definition is None:
                    continue  # not in the Questionnaire here: validation reports it
                seen.add(definition.link_id)
                if within is not None and not within(definition):
                    continue
                visit = self._visit(definition, item, f"{prefix}.item[{position}]", env, variables)
                yield visit
                if definition.children:
                    yield from self._children(
                        definition.children,
                        definition.child_index,
                        containers(item, visit.location),
                        visit.environment,
                        variables,
                        include_absent,
                        within,
                    )
        if include_absent:
            for definition in definitions:
                if definition.link_id not in seen and (within is None or within(definition)):
                    visit = self._visit(definition, None, "", env, variables)
                    yield visit
                    if definition.children:
                        yield from self._children(
                            definition.children, definition.child_index, [], visit.environment, variables, True, within
                        )

    def _visit(
        self, definition: ItemDef, item: dict[str, Any] | None, location: str, parent: Environment, variables: bool
    ) -> Visit:
        visit = Visit(definition, item, location, _UNSET)
        declared = definition.variables if variables else ()
        visit.environment = Environment(self, parent, {"qitem": definition.source}, declared, visit)
        return visit
