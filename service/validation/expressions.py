"""FHIRPath evaluation for enableWhenExpression and questionnaire-constraint, isolated from the inputs.

fhirpathpy annotates what it is given, so every evaluation works on deep copies; any failure to
parse or evaluate comes back as text for an issue, never as an exception.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, cast

from antlr4 import CommonTokenStream, InputStream  # type: ignore[import-untyped]
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from service.validation.context import EXT_VARIABLE, JSON, Context, describe, extensions, text_value
from service.validation.tree import Node, QuestionnaireIndex

_R4 = models["r4"]
# A response item handed to fhirpathpy with its type path, so that choice elements (answer.value)
# resolve as they do from %resource.
_typed = cast(Callable[[Any, str], Any], ResourceNode.create_node)
FHIRPATH = "text/fhirpath"


class EvaluationError(Exception):
    """An expression could not be parsed or evaluated."""


class _RaiseOnError(ErrorListener):  # type: ignore[misc]
    def syntaxError(self, recognizer: Any, symbol: Any, line: int, column: int, message: str, error: Any) -> None:
        # ANTLR appends the whole list of tokens it would have accepted; the first part says enough.
        brief = message.split(" expecting ", 1)[0]
        raise EvaluationError(f"cannot be parsed (at character {column + 1}: {brief})")


def syntax_problem(expression: str) -> str | None:
    """Why the expression is not FHIRPath, or None.

    fhirpathpy's own parser recovers from syntax errors silently (``answer.count() = 3 asdf`` runs as
    ``answer.count() = 3``), so the grammar is run once more with errors raised and the whole text
    required to be one expression.
    """
    listener = _RaiseOnError()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    try:
        parser.entireExpression()  # type: ignore[no-untyped-call]
    except EvaluationError as exc:
        return str(exc)
    except Exception as exc:
        return f"cannot be parsed ({type(exc).__name__})"
    return None


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
        self._compiled: dict[str, Callable[..., list[Any]] | str] = {}

    def _compile(self, expression: str) -> Callable[..., list[Any]]:
        found = self._compiled.get(expression)
        if found is None:
            found = syntax_problem(expression)
            if found is None:
                try:
                    found = compile_fhirpath(expression, _R4)
                except Exception as exc:
                    found = f"cannot be parsed: {_reason(exc)}"
            self._compiled[expression] = found
        if isinstance(found, str):
            raise EvaluationError(found)
        return found

    def evaluate(self, expression: str, focus: Node, q_item: JSON | None) -> list[Any]:
        """Evaluate with %resource = the response, %questionnaire, %context = the focus item, plus the
        SDC variables declared on the Questionnaire (evaluated on the response) and on the item and its
        ancestors (evaluated on the focus item)."""
        response = copy.deepcopy(dict(self._context.response))
        target = self._target(focus, response)
        variables: dict[str, Any] = {
            "resource": response,
            "rootResource": response,
            "questionnaire": copy.deepcopy(dict(self._context.questionnaire)),
            "context": target,
            "qitem": copy.deepcopy(dict(q_item)) if q_item is not None else None,
        }
        chain: list[JSON] = [self._context.questionnaire]
        if q_item is not None:
            chain += self._index.ancestors(q_item) + [q_item]
        for element in chain:
            for ext in extensions(element, EXT_VARIABLE):
                value = ext.get("valueExpression")
                name = text_value(value.get("name")) if isinstance(value, Mapping) else None
                text, _ = expression_text(value)
                if name is None or text is None or name in variables:
                    continue
                scope = response if element is self._context.questionnaire else self._target(focus, response)
                try:
                    variables[name] = self._run(text, scope, variables)
                except EvaluationError as exc:
                    self._context.once(
                        "warning",
                        "processing",
                        f"Variable '{name}' of the Questionnaire could not be evaluated: {exc}",
                        focus.path,
                        focus.link_id,
                    )
        return self._run(expression, target, variables)

    @staticmethod
    def _target(focus: Node, response: dict[str, Any]) -> Any:
        if focus.parent is None:
            return response
        return _typed(copy.deepcopy(dict(focus.data)), "QuestionnaireResponse.item")

    def _run(self, expression: str, target: Any, variables: Mapping[str, Any]) -> list[Any]:
        function = self._compile(expression)
        try:
            result = function(target, dict(variables))
        except Exception as exc:
            raise EvaluationError(f"failed: {_reason(exc)}") from None
        return result if isinstance(result, list) else [result]

    def boolean(
        self, expression: str, focus: Node, q_item: JSON | None, purpose: str, *, empty: bool = False
    ) -> bool | None:
        """The expression's boolean result (``empty`` for an empty result); None, with an issue, when it
        cannot be evaluated."""
        try:
            result = self.evaluate(expression, focus, q_item)
        except EvaluationError as exc:
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


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _preview(result: list[Any]) -> str:
    text = repr(result)
    return text if len(text) <= 80 else text[:77] + "..."
