"""enableWhenExpression, questionnaire-constraint and SDC variables, evaluated by the scoring engine.

The engine works on its own copies of the inputs; any failure to parse or evaluate comes back as text
for an issue, never as an exception. An expression that cannot be evaluated is a warning (its rule is
not applied), except one stopped by the evaluation budget: that is an error naming the expression, for
the response could not be checked at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.scoring import FHIRPATH, BudgetExceeded, FhirPathError, ResponseEvaluator, compile_expression, plain
from service.validation.context import EXT_VARIABLE, JSON, Context, describe, extensions, text_value
from service.validation.tree import Node, QuestionnaireIndex

ROOT = "QuestionnaireResponse"


def expression_text(value: Any) -> tuple[str | None, str | None]:
    """(FHIRPath text, problem) of an Expression datatype."""
    if not isinstance(value, Mapping):
        return None, "is not an Expression"
    language = value.get("language")
    text = text_value(value.get("expression"))
    if language != FHIRPATH:
        return None, f"uses the language {language!r}, only {FHIRPATH} is supported"
    if text is None:
        return None, "has no expression text"
    return text, None


class Expressions:
    def __init__(self, context: Context, index: QuestionnaireIndex) -> None:
        self._context = context
        self._index = index
        self._evaluator: ResponseEvaluator | None = None

    def evaluate(self, expression: str, focus: Node, q_item: JSON | None) -> list[Any]:
        """The expression's values with %context = the focus item and %qitem = ``q_item``, plus the SDC
        variables declared on the Questionnaire (evaluated on the response) and on the item and its
        ancestors (evaluated on the focus item). Raises FhirPathError saying what went wrong."""
        variables: dict[str, Any] = {}
        questionnaire = self._context.questionnaire
        chain: list[JSON] = [questionnaire]
        if q_item is not None:
            chain += self._index.ancestors(q_item) + [q_item]
        for element in chain:
            location, owner = (ROOT, None) if element is questionnaire else (focus.path, q_item)
            for ext in extensions(element, EXT_VARIABLE):
                value = ext.get("valueExpression")
                name = text_value(value.get("name")) if isinstance(value, Mapping) else None
                text, _ = expression_text(value)
                if name is None or text is None or name in variables or name in ResponseEvaluator.ENVIRONMENT:
                    continue
                try:
                    variables[name] = self._run(text, location, owner, variables)
                except BudgetExceeded as exc:
                    raise BudgetExceeded(f"{exc} (in variable '{name}': {text})") from None
                except FhirPathError as exc:
                    self._context.once(
                        "warning",
                        "processing",
                        f"Variable '{name}' of the Questionnaire could not be evaluated: {exc}",
                        focus.path,
                        focus.link_id,
                    )
        return plain(self._run(expression, focus.path, q_item, variables))

    def _run(self, expression: str, location: str, q_item: JSON | None, variables: Mapping[str, Any]) -> list[Any]:
        try:
            compiled = compile_expression(expression)
        except FhirPathError as exc:
            raise FhirPathError(f"cannot be parsed ({_brief(exc)})") from None
        if self._evaluator is None:
            self._evaluator = ResponseEvaluator(self._context.questionnaire, self._context.response)
        try:
            return self._evaluator.evaluate(compiled, location, qitem=q_item, variables=variables)
        except BudgetExceeded as exc:
            raise BudgetExceeded(f"was stopped: {exc}") from None
        except FhirPathError as exc:
            raise FhirPathError(f"failed: {_brief(exc)}") from None

    def boolean(
        self, expression: str, focus: Node, q_item: JSON | None, purpose: str, *, empty: bool = False
    ) -> bool | None:
        """The expression's boolean result (``empty`` for an empty result); None, with an issue, when it
        cannot be evaluated."""
        try:
            result = self.evaluate(expression, focus, q_item)
        except BudgetExceeded as exc:
            self._context.once(
                "error",
                "too-costly",
                f"The {purpose} of {_owner(q_item)} {exc}; the response cannot be checked against it. "
                f"Expression: {expression}",
                focus.path,
                text_value(q_item.get("linkId")) if q_item is not None else None,
            )
            return None
        except FhirPathError as exc:
            self._context.once(
                "warning",
                "processing",
                f"The {purpose} of {_owner(q_item)} {exc}; the rule it expresses was not applied",
                focus.path,
                text_value(q_item.get("linkId")) if q_item is not None else None,
            )
            return None
        if result == [True] or result == [False]:
            return bool(result[0])
        if not result:
            return empty
        self._context.once(
            "warning",
            "processing",
            f"The {purpose} of {_owner(q_item)} returned {_preview(result)} instead of a boolean; "
            "a non-empty result was read as true",
            focus.path,
            text_value(q_item.get("linkId")) if q_item is not None else None,
        )
        return True


def _owner(q_item: JSON | None) -> str:
    return f"item {describe(q_item)}" if q_item is not None else "the Questionnaire"


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _preview(result: list[Any]) -> str:
    text = repr(result)
    return text if len(text) <= 80 else text[:77] + "..."
