"""Walks a response alongside its Questionnaire, giving each item the FHIRPath environment in scope there.

The environment of an item holds ``%resource``, ``%questionnaire``, ``%qitem``, ``%context`` and every
SDC ``variable`` declared on the Questionnaire, on the item's ancestors and on the item itself, each
evaluated in order (so a variable may use the ones declared before it) with its own element as context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._build: Callable[[], dict[str, Any]] | None = build
        self._value: dict[str, Any] = {}

    def get(self) -> Mapping[str, Any]:
        if self._build is not None:
            build, self._build = self._build, None
            self._value = build()
        return self._value


@dataclass(frozen=True)
class Visit:
    """One place in the response: the root (``item_def`` None) or an instance of a Questionnaire item.

    ``item`` is None for the root, and for an item the response does not contain (walks that ask for
    absent items see them with an empty ``%context`` and an empty ``location``).
    """

    item_def: ItemDef | None
    item: dict[str, Any] | None
    location: str
    focus: Any
    environment: Environment

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
            if isinstance(answer, Mapping) and isinstance(answer.get("item"), list):
                found.append((answer["item"], f"{location}.answer[{index}]"))
    return found


class Scope:
    """Evaluates expressions over one response (a private copy) for one Questionnaire definition."""

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

    def evaluate(self, expression: ExpressionDef, focus: Any, env: Mapping[str, Any]) -> list[Any]:
        """The engine's result; raises FhirPathError (also for an expression that did not compile)."""
        if expression.compiled is None:
            raise FhirPathError(expression.error or "the expression did not compile")
        return evaluate(expression.compiled, focus, env, self.sdc)

    def _environment(
        self,
        parent: Environment | None,
        extra: Mapping[str, Any],
        variables: Sequence[ExpressionDef],
        focus: Any,
        item: Mapping[str, Any] | None,
    ) -> Environment:
        def build() -> dict[str, Any]:
            scope = {**(parent.get() if parent is not None else {}), **extra, "context": focus}
            for variable in variables:
                if not variable.name:
                    self.report(variable, "the variable has no name", item)
                    continue
                if variable.language != FHIRPATH:
                    scope[variable.name] = []  # e.g. an x-fhir-query variable for pre-population: no value here
                    continue
                try:
                    scope[variable.name] = self.evaluate(variable, focus, scope)
                except FhirPathError as exc:
                    self.report(variable, str(exc), item)
                    scope[variable.name] = []  # dependants see "no value" rather than an unknown variable
            return scope

        return Environment(build)

    def walk(self, *, variables: bool = True, include_absent: bool = False) -> Iterator[Visit]:
        """Visit the root, then every item depth-first in response order.

        The walk is lazy: what a consumer writes into an item before asking for the next visit is seen
        by everything evaluated after it. ``variables=False`` leaves the SDC variables out (for walks
        that only look at the structure).
        """
        base = {"resource": self.response, "questionnaire": self.definition.source}
        declared = self.definition.variables if variables else ()
        env = self._environment(None, base, declared, self.response, None)
        yield Visit(None, None, ROOT, self.response, env)
        items = self.response.get("item")
        found = [(items, ROOT)] if isinstance(items, list) else []
        yield from self._children(self.definition.items, found, env, variables, include_absent)

    def _children(
        self,
        definitions: tuple[ItemDef, ...],
        found: list[tuple[list[Any], str]],
        env: Environment,
        variables: bool,
        include_absent: bool,
    ) -> Iterator[Visit]:
        by_link_id = {definition.link_id: definition for definition in definitions}
        seen: set[str] = set()
        for items, prefix in found:
            for index, item in enumerate(items):
                definition = by_link_id.get(str(item.get("linkId"))) if isinstance(item, dict) else None
                if definition is None:
                    continue  # not in the Questionnaire here: validation reports it
                seen.add(definition.link_id)
                location = f"{prefix}.item[{index}]"
                yield from self._visit(definition, item, location, env, variables, include_absent)
        if include_absent:
            for definition in definitions:
                if definition.link_id not in seen:
                    yield from self._visit(definition, None, "", env, variables, include_absent)

    def _visit(
        self,
        definition: ItemDef,
        item: dict[str, Any] | None,
        location: str,
        parent: Environment,
        variables: bool,
        include_absent: bool,
    ) -> Iterator[Visit]:
        focus: Any = item_node(item, location) if item is not None else []
        declared = definition.variables if variables else ()
        env = self._environment(parent, {"qitem": definition.source}, declared, focus, item)
        yield Visit(definition, item, location, focus, env)
        nested = containers(item, location) if item is not None else []
        yield from self._children(definition.children, nested, env, variables, include_absent)
