"""The shape scoring expressions are made of, evaluated directly over the response JSON.

Nearly every score reads the weights of the answers to a set of items:

    %resource.repeat(item).where(linkId in ('a' | 'b' | ...)).answer.value.weight()

(or ``%resource.item``, ``linkId = 'a'``, ``ordinal()``). The interpreter wraps every item, answer and
value of the response in a node, keys each item for repeat()'s duplicate check, and resolves each
value's location back to its answer for weight(). Here the items are walked once and each chosen
answer is handed straight to weight()'s own lookup (``AnswerWeights.answer_weight``).

The result is the interpreter's, in the same order, with the same errors: whenever the response holds
something the interpreter would treat in a way this walk does not (malformed JSON, primitive extensions,
items repeat() would drop as duplicates, values it could not key), ``evaluate`` returns None and the
caller evaluates the expression as the interpreter does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fhirpathpy.engine.evaluators import identifier as read_identifier
from fhirpathpy.engine.evaluators import string_literal as read_string
from fhirpathpy.models import models

from service.scoring.functions import FUNCTIONS, SDC_KEY
from service.scoring.weights import AnswerWeights, Number

ANSWER_WEIGHTS = "answer-weights"
ROOT = "QuestionnaireResponse"
# The value[x] types of an answer, as the engine's model lists them.
_VALUE_KEYS = frozenset(
    "value" + suffix for suffix in models["r4"]["choiceTypePaths"]["QuestionnaireResponse.item.answer.value"]
)
_WEIGHT_FUNCTIONS = ("weight", "ordinal")
# How the engine reads a name and a string literal: (ctx, input, node) -> [value]
identifier: Callable[[Any, Any, Mapping[str, Any]], list[Any]] = read_identifier
string_literal: Callable[[Any, Any, Mapping[str, Any]], list[Any]] = read_string


@dataclass(frozen=True)
class Shape:
    """A recognised part of an expression: ``evaluate(ctx)`` gives its value, or None to decline."""

    name: str
    evaluate: Callable[[dict[str, Any]], list[Number] | None]


# ---- recognising the shape in the syntax tree -----------------------------------------------------------


def _unwrap(node: Mapping[str, Any], *kinds: str) -> Mapping[str, Any] | None:
    """The only child of ``node`` if ``node`` is of the first kind, and so on down the kinds given."""
    for kind in kinds:
        children = node.get("children")
        if node.get("type") != kind or not isinstance(children, list) or len(children) != 1:
            return None
        node = children[0]
        if not isinstance(node, Mapping):
            return None
    return node


def _name(node: Mapping[str, Any] | None) -> str | None:
    if node is None or node.get("type") != "Identifier" or not isinstance(node.get("text"), str):
        return None
    return str(identifier(None, None, node)[0]).replace("`", "")  # as the engine reads names


def _member(node: Mapping[str, Any]) -> str | None:
    """``name`` for a member step (``.answer``)."""
    return _name(_unwrap(node, "MemberInvocation"))


def _term_member(node: Mapping[str, Any]) -> str | None:
    """``name`` for a member read from the input (``linkId`` in ``where(linkId = ...)``)."""
    return _name(_unwrap(node, "TermExpression", "InvocationTerm", "MemberInvocation"))


def _function(node: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]]] | None:
    """(name, parameters) of a function step, if the engine would call this service's own function."""
    functn = _unwrap(node, "FunctionInvocation")
    parts = functn.get("children") if functn is not None and functn.get("type") == "Functn" else None
    if not isinstance(parts, list) or not 1 <= len(parts) <= 2:
        return None
    name = _name(parts[0])
    if name is None or name not in FUNCTIONS:
        return None
    if len(parts) == 1:
        return name, []
    params = parts[1].get("children") if parts[1].get("type") == "ParamList" else None
    if not isinstance(params, list) or not all(isinstance(param, Mapping) for param in params):
        return None
    return name, params


def _string_set(node: Mapping[str, Any], constants: Mapping[str, list[Any]]) -> frozenset[str] | None:
    """The strings of a folded constant collection or of a string literal."""
    while node.get("type") in ("TermExpression", "ParenthesizedTerm"):
        inner = _unwrap(node, str(node.get("type")))
        if inner is None:
            return None
        node = inner
    if node.get("type") == "LiteralTerm":
        literal = _unwrap(node, "LiteralTerm")
        if literal is None or literal.get("type") != "StringLiteral":
            return None
        return frozenset(string_literal(None, None, literal))
    name = _name(_unwrap(node, "ExternalConstantTerm", "ExternalConstant"))
    values = constants.get(name) if name is not None else None
    if values is None or not all(isinstance(value, str) for value in values):
        return None
    return frozenset(values)


def _link_ids(criterion: Mapping[str, Any], constants: Mapping[str, list[Any]]) -> frozenset[str] | None:
    """The linkIds a ``where()`` criterion picks: ``linkId in (...)`` or ``linkId = '...'``."""
    children = criterion.get("children")
    operator = criterion.get("terminalNodeText")
    if not isinstance(children, list) or len(children) != 2 or not all(isinstance(c, Mapping) for c in children):
        return None
    if _term_member(children[0]) != "linkId":
        return None
    if criterion.get("type") == "MembershipExpression" and operator == ["in"]:
        return _string_set(children[1], constants)
    if criterion.get("type") == "EqualityExpression" and operator == ["="]:
        literal = _unwrap(children[1], "TermExpression", "LiteralTerm")
        if literal is None or literal.get("type") != "StringLiteral":
            return None
        return frozenset(string_literal(None, None, literal))
    return None


def _steps(node: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The steps of an invocation chain ``a.b.c()``, first to last."""
    steps: list[Mapping[str, Any]] = []
    while node.get("type") == "InvocationExpression":
        children = node.get("children")
        if not isinstance(children, list) or len(children) != 2 or not all(isinstance(c, Mapping) for c in children):
            return None
        steps.append(children[1])
        node = children[0]
    steps.append(node)
    steps.reverse()
    return steps


def answer_weights_shape(node: Mapping[str, Any], constants: Mapping[str, list[Any]]) -> Shape | None:
    """The answer-weights shape if ``node`` (an InvocationExpression) is one, else None.

    ``%resource.repeat(item)`` or ``%resource.item``, then ``.where(linkId in (...))`` or
    ``.where(linkId = '...')``, then ``.answer.value.weight()`` or ``.ordinal()``.
    """
    steps = _steps(node)
    if steps is None or len(steps) != 6:
        return None
    head, source, where, answer, value, weight = steps
    if _name(_unwrap(head, "TermExpression", "ExternalConstantTerm", "ExternalConstant")) != "resource":
        return None
    repeat = _function(source)
    recursive = repeat is not None and repeat[0] == "repeat" and len(repeat[1]) == 1
    if recursive:
        assert repeat is not None
        if _term_member(repeat[1][0]) != "item":
            return None
    elif _member(source) != "item":
        return None
    criterion = _function(where)
    if criterion is None or criterion[0] != "where" or len(criterion[1]) != 1:
        return None
    link_ids = _link_ids(criterion[1][0], constants)
    if link_ids is None or _member(answer) != "answer" or _member(value) != "value":
        return None
    weigh = _function(weight)
    if weigh is None or weigh[0] not in _WEIGHT_FUNCTIONS or weigh[1]:
        return None

    def evaluate(ctx: dict[str, Any]) -> list[Number] | None:
        return _answer_weights(ctx, link_ids, recursive)

    return Shape(ANSWER_WEIGHTS, evaluate)


# ---- evaluating it -------------------------------------------------------------------------------------


def _items(response: Mapping[str, Any], recursive: bool) -> list[tuple[dict[str, Any], str | None]] | None:
    """(item, linkId) of the items ``%resource.repeat(item)`` (or ``%resource.item``) gives, in its order;
    None when the interpreter could give something else."""
    found: list[tuple[dict[str, Any], str | None]] = []
    link_ids: set[str | None] = set()
    parents: list[Mapping[str, Any]] = [response]
    position = 0
    while position < len(parents):
        children = parents[position].get("item")
        position += 1
        if children is None or children == []:
            continue
        if type(children) is not list:
            return None
        for child in children:
            # Primitive extensions (``_linkId``, ``_item``) and resources in odd places are read otherwise.
            if not isinstance(child, dict) or "resourceType" in child or "_item" in child or "_linkId" in child:
                return None
            link_id = child.get("linkId")
            if link_id is not None and type(link_id) is not str:
                return None
            found.append((child, link_id))
            if recursive:
                # repeat() drops an item equal to one it has (only items with the same linkId can be).
                if link_id in link_ids:
                    return None
                link_ids.add(link_id)
                parents.append(child)
    return found


def _keyable(items: Any) -> bool:
    """Whether repeat() can key every item (it serialises each one, which fails e.g. on huge integers)."""
    try:
        orjson.dumps(items, default=str)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _answer_weights(ctx: dict[str, Any], link_ids: frozenset[str], recursive: bool) -> list[Number] | None:
    response = ctx["vars"].get("resource")
    sdc = ctx.get(SDC_KEY)
    # weight() finds answers in the response it was built for; %resource must be that very response.
    if not isinstance(sdc, AnswerWeights) or response is not sdc.response or type(response) is not dict:
        return None
    if response.get("resourceType") != ROOT or "_item" in response:
        return None
    items = _items(response, recursive)
    if items is None or (recursive and items and not _keyable(response["item"])):
        return None
    chosen: list[tuple[Mapping[str, Any], Mapping[str, Any], str]] = []
    for item, link_id in items:
        if link_id is None or link_id not in link_ids:
            continue
        if "_answer" in item:
            return None
        answers = item.get("answer")
        if answers is None or answers == []:
            continue
        if type(answers) is not list:
            return None
        for answer in answers:
            key = _value_key(answer)
            if key is None:
                return None
            if key:
                chosen.append((item, answer, key))
    weights = []
    for answered, answer, key in chosen:
        weight = sdc.answer_weight(answered, answer, key)
        if weight is not None:
            weights.append(weight)
    return weights


def _value_key(answer: Any) -> str | None:
    """The answer's one ``value[x]`` key ("" when it has none); None when ``.value`` could read otherwise."""
    if type(answer) is not dict or "resourceType" in answer:
        return None
    found = ""
    for key in answer:
        if key.startswith(("value", "_value")):
            if found or key not in _VALUE_KEYS:
                return None
            found = key
    if found:
        value = answer[found]
        if value is None or type(value) is list:
            return None
        if isinstance(value, dict) or (type(value) not in _SCALARS and isinstance(value, Mapping)):
            if "resourceType" in value:
                return None
    return found


_SCALARS = (str, int, float, bool)
