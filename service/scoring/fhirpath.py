"""FHIRPath for SDC on top of fhirpathpy: parsing (with syntax errors), compiling once, evaluating.

fhirpathpy's own entry points (``evaluate``/``compile``) hand user-defined functions bare values, but
``weight()`` must know where a value sits in the response (which item, which answer) to find its
answer option. So expressions are parsed once with fhirpathpy's parser and run through its engine
directly, with the function table of ``functions.py``, whose functions receive the engine's items.

Each parsed expression is also compiled into closures (``compiler.py``) that evaluate it as the
interpreter does, only faster; ``interpreted()`` turns them off, to compare the two.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream  # type: ignore[import-untyped]
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from fhirpathpy.engine import do_eval
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.engine.invocations.constants import constants
from fhirpathpy.engine.nodes import FP_Quantity, FP_TimeBase
from fhirpathpy.models import models
from fhirpathpy.parser import parse
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from service.scoring.budget import ENGINE_FUNCTIONS, LIMITS, Budget, tree_depth
from service.scoring.compiler import Plan, compile_plan
from service.scoring.functions import (
    BUDGET_KEY,
    FUNCTIONS,
    SDC_KEY,
    FhirPathError,
    SdcFunctions,
    data_of,
    is_primitive_extension,
    make_node,
)

# Environment variables every expression may use (FHIRPath and FHIR define these; SDC adds the rest).
STANDARD_CONSTANTS: Mapping[str, str] = {
    "ucum": "http://unitsofmeasure.org",
    "sct": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
}
SDC_ENVIRONMENT = ("resource", "questionnaire", "qitem", "context", *STANDARD_CONSTANTS)
R4_MODEL: Mapping[str, Any] = models["r4"]


@dataclass(frozen=True)
class CompiledExpression:
    """One parsed FHIRPath expression (parse once, evaluate many times).

    ``ast`` is the expression as written; ``program`` is what runs: the same tree with each constant
    collection (such as ``('a' | 'b' | 'c')``) computed once and read from ``constants``. ``plan`` is
    ``program`` compiled into closures (None for a tree the compiler cannot take: the interpreter runs it).
    """

    text: str
    ast: Mapping[str, Any]
    program: Mapping[str, Any]
    constants: Mapping[str, list[Any]]
    plan: Plan | None = None


class _RaisingListener(ErrorListener):  # type: ignore[misc]
    def syntaxError(self, recognizer: Any, symbol: Any, line: int, column: int, msg: str, e: Any) -> None:
        # ANTLR appends every token it would have accepted; the first part says enough.
        brief = msg.split(" expecting ", 1)[0]
        raise FhirPathError(f"syntax error at character {column + 1}: {brief}")


def _check_syntax(text: str) -> None:
    # fhirpathpy's parser recovers from syntax errors silently (``answer.count() = 3 asdf`` runs as
    # ``answer.count() = 3``), so the whole text is parsed strictly first, as one expression.
    listener = _RaisingListener()
    lexer = FHIRPathLexer(InputStream(text))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser.entireExpression()  # type: ignore[no-untyped-call]


def compile_expression(text: str) -> CompiledExpression:
    """Parse ``text`` once (cached by text, failures too); raises FhirPathError saying why it is not FHIRPath."""
    try:
        compiled = _compile(text)
    except RecursionError:  # depends on how deep the caller is, so it is not remembered
        raise FhirPathError("the expression nests too deeply") from None
    if isinstance(compiled, str):
        raise FhirPathError(compiled)
    return compiled


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> CompiledExpression | str:
    if not text.strip():
        return "the expression is empty"
    if len(text) > LIMITS.max_expression_length:  # parsing alone would take seconds
        return f"the expression is {len(text):,} characters long; at most {LIMITS.max_expression_length:,} are allowed"
    constants: dict[str, list[Any]] = {}
    try:
        _check_syntax(text)
        ast = parse(text)  # type: ignore[no-untyped-call]
        program = _fold(ast, constants)
    except FhirPathError as exc:
        return str(exc)
    except RecursionError:
        raise
    except Exception as exc:  # the parser's own failures, whatever their class
        return f"the parser failed ({exc or type(exc).__name__})"
    if tree_depth(program, LIMITS.max_depth) > LIMITS.max_depth:
        return f"the expression nests more than {LIMITS.max_depth} levels deep"
    return CompiledExpression(text, ast, program, constants, _plan(program, constants))


def _plan(program: Mapping[str, Any], constants: Mapping[str, list[Any]]) -> Plan | None:
    try:
        return compile_plan(program["children"][0], constants)
    except Exception:  # a tree the compiler cannot take is left to the interpreter, which is always right
        return None


# Node types whose value cannot depend on the input, the environment or any function.
_CONSTANT_NODES = {
    "UnionExpression", "ParenthesizedTerm", "TermExpression", "LiteralTerm", "StringLiteral",
    "NumberLiteral", "BooleanLiteral", "NullLiteral", "QuantityLiteral", "DateTimeLiteral", "TimeLiteral",
}  # fmt: skip


def _is_constant(node: Mapping[str, Any]) -> bool:
    return node.get("type") in _CONSTANT_NODES and all(
        _is_constant(child) for child in node.get("children") or () if isinstance(child, Mapping)
    )


def _fold(node: Mapping[str, Any], constants: dict[str, list[Any]]) -> Mapping[str, Any]:
    """A copy of ``node`` with every constant union replaced by a read of its value, computed here once.

    Lists of codes written as ``linkId in ('a' | 'b' | ...)`` are common in scoring expressions, and
    the engine would otherwise rebuild the list for every item it filters.
    """
    if node.get("type") == "UnionExpression" and _is_constant(node):
        try:
            value = do_eval(_context([], {}, None, Budget()), [], node)  # type: ignore[no-untyped-call]
        except Exception:  # leave it to fail (or not) where it is evaluated
            value = None
        if isinstance(value, list):
            name = f"constant {len(constants)}"  # a space: no expression can name it
            constants[name] = value
            identifier = {"type": "Identifier", "terminalNodeText": [name], "text": name}
            reference = {"type": "ExternalConstant", "terminalNodeText": ["%"], "children": [identifier]}
            return {"type": "ExternalConstantTerm", "terminalNodeText": [], "children": [reference]}
    children = node.get("children")
    if not children:
        return node
    return {
        **node,
        "children": [_fold(child, constants) if isinstance(child, Mapping) else child for child in children],
    }


def _walk(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for child in node.get("children") or ():
        if isinstance(child, Mapping):
            yield from _walk(child)


def function_names(expression: CompiledExpression) -> set[str]:
    """Names of the functions the expression calls."""
    names: set[str] = set()
    for node in _walk(expression.ast):
        if node.get("type") == "Functn":
            identifier = (node.get("children") or [{}])[0]
            names.add(str(identifier.get("text", "")).strip("`"))
    return names


def constant_names(expression: CompiledExpression) -> set[str]:
    """Names of the ``%`` environment variables the expression reads."""
    names: set[str] = set()
    for node in _walk(expression.ast):
        if node.get("type") == "ExternalConstant":
            identifier = (node.get("children") or [{}])[0]
            names.add(str(identifier.get("text", "")).strip("`'\""))
    return names


def known_functions() -> set[str]:
    return set(invocation_registry) | set(FUNCTIONS)


# ---- values ------------------------------------------------------------------------------------------


def plain(values: Sequence[Any]) -> list[Any]:
    """Engine output as plain Python: dicts/lists/str/bool/int/Decimal, quantities and dates kept typed."""
    result: list[Any] = []
    for value in values:
        data = data_of(value)
        if is_primitive_extension(data):
            continue
        if isinstance(data, float):
            data = Decimal(repr(data))
        result.append(data)
    return result


# ---- evaluation ---------------------------------------------------------------------------------------

_interpreted: ContextVar[bool] = ContextVar("proms_fhirpath_interpreted", default=False)


@contextmanager
def interpreted() -> Iterator[None]:
    """Within the block, expressions are evaluated by fhirpathpy's interpreter, not by their closures.

    The two give the same results (the differential tests check it); this is how they are compared,
    and how the benchmark shows what the closures gain.
    """
    token = _interpreted.set(True)
    try:
        yield
    finally:
        _interpreted.reset(token)


def _no_trace(label: str, values: Any) -> None:
    """trace() writes nothing: fhirpathpy would print every value to the server's output."""


def _context(root: list[Any], env: dict[str, Any], sdc: SdcFunctions | None, budget: Budget) -> dict[str, Any]:
    """The engine's evaluation context (its own structure, as fhirpathpy's evaluate() builds it)."""
    return {
        "dataRoot": root,
        "vars": env,
        "model": R4_MODEL,  # the closures read none; the interpreter is given the budget's (see evaluate)
        "userInvocationTable": ENGINE_FUNCTIONS,
        "traceFn": _no_trace,
        SDC_KEY: sdc,
        BUDGET_KEY: budget,
    }


# How Python shows an object without a text of its own: "<fhirpathpy.engine.nodes.ResourceNode object at 0x7f..>".
_OBJECT = re.compile(r"<(?:[\w.]+\.)?(\w+) object at 0x[0-9a-fA-F]+>")


def _message(exc: BaseException) -> str:
    """The engine's message for a failure, without the memory addresses it may show (they differ from one
    evaluation to the next, so the same failure would not read the same twice)."""
    return _OBJECT.sub(r"<\1>", str(exc)) or type(exc).__name__


def item_node(item: Mapping[str, Any], location: str) -> Any:
    """A QuestionnaireResponse item as a focus whose children keep their location (for weight())."""
    return make_node(item, "QuestionnaireResponse.item", location)


def evaluate(
    expression: CompiledExpression,
    focus: Any,
    variables: Mapping[str, Any],
    sdc: SdcFunctions,
    budget: Budget | None = None,
) -> list[Any]:
    """Evaluate over ``focus`` with ``%`` variables; returns the engine's items (see ``plain``).

    ``budget``: the one shared by every evaluation over the same response (a new one if not given).
    Raises FhirPathError for anything that goes wrong inside the engine, BudgetExceeded (a FhirPathError)
    when the expression goes over a limit.
    """
    constants.reset()  # type: ignore[no-untyped-call]  # now()/today() are fixed for one evaluation
    root = focus if isinstance(focus, list) else ([] if focus is None else [focus])
    # Fresh lists: the engine negates numbers in place inside the collection a variable holds.
    env: dict[str, Any] = {name: list(value) if isinstance(value, list) else value for name, value in variables.items()}
    env.setdefault("context", focus)
    for name, uri in STANDARD_CONSTANTS.items():
        env.setdefault(name, uri)
    for name, folded in expression.constants.items():
        env[name] = list(folded)
    budget = budget or Budget()
    ctx = _context(root, env, sdc, budget)
    plan = expression.plan
    try:
        budget.tick()  # once the response's time is spent, no expression starts
        if plan is not None and not _interpreted.get():
            result = plan.run(ctx, root)
        else:
            ctx["model"] = budget.model
            result = do_eval(ctx, root, expression.program["children"][0])  # type: ignore[no-untyped-call]
            budget.check(result)  # the interpreter's last step may be a navigation nothing has checked
    except FhirPathError as exc:
        message = _message(exc)
        if message != str(exc):
            raise type(exc)(message) from exc
        raise
    except RecursionError as exc:
        raise FhirPathError("the expression nests too deeply") from exc
    except Exception as exc:
        if not raised_by_engine(exc):
            raise  # a defect in the service's own code: the server's failure (500), never the client's
        raise FhirPathError(_message(exc)) from exc  # the engine could not evaluate it
    if isinstance(result, dict) and result.get("$status") == "error":
        raise FhirPathError(_message(Exception(result.get("$error"))))
    return list(result) if isinstance(result, list) else [result]


_ENGINE_DIR = os.path.dirname(fhirpathpy.__file__) + os.sep
_SERVICE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def raised_by_engine(exc: BaseException) -> bool:
    """Whether the innermost frame of the failure that is fhirpathpy's or the service's own is fhirpathpy's: the
    engine failing to evaluate an expression (however it signals it), not a defect of the service."""
    found = False
    traceback = exc.__traceback__
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if filename.startswith(_ENGINE_DIR):
            found = True
        elif filename.startswith(_SERVICE_DIR):
            found = False
        traceback = traceback.tb_next
    return found


def describe(value: Any) -> str:
    """A short human form of one plain result value, for messages."""
    if isinstance(value, FP_Quantity):
        return f"{value.value} {value.unit}"
    if isinstance(value, FP_TimeBase):
        return str(value)
    text = repr(value) if not isinstance(value, Decimal) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
