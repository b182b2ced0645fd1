"""Compiles a parsed FHIRPath expression into Python closures that evaluate it exactly as fhirpathpy does.

fhirpathpy's interpreter walks the syntax tree on every evaluation: each node is dispatched by its type,
each function call merges the table of functions anew, each literal is parsed again. Here that work is
done once, when the expression is compiled: a closure per node then does only what the node means,
calling the same engine functions with the same parameters and touching the evaluation context
(``$this``, ``$index``, variables) in the same way and in the same order. A compiled expression therefore
gives what the interpreter gives, errors included; the differential tests hold the two to that.

Node types this module has no closure for (date, time and quantity literals; calls the interpreter
refuses before evaluating anything) are handed to the interpreter as they are (``do_eval``), over the
same context. Where an expression contains one of the shapes scoring expressions are made of, that
part is evaluated directly over the response JSON (``shapes.py``), when the rest of the expression cannot
tell the difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from fhirpathpy.engine import do_eval, param_check_table, type_specifier, util
from fhirpathpy.engine.evaluators import (
    create_reduce_member_invocation,
    identifier,
    number_literal,
    string_literal,
)
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from service.scoring.budget import ENGINE_FUNCTIONS, LIMITS, Budget, tree_depth
from service.scoring.functions import BUDGET_KEY, FhirPathError
from service.scoring.shapes import answer_weights_shape

R4_MODEL: Mapping[str, Any] = models["r4"]

# What the interpreter looks functions up in: every function and operator, each checking the budget.
REGISTRY: Mapping[str, Mapping[str, Any]] = ENGINE_FUNCTIONS

# The interpreter's helpers, with the types they have.
arraify: Callable[[Any], list[Any]] = util.arraify
is_capitalized: Callable[[Any], bool] = util.is_capitalized
is_empty: Callable[[Any], bool] = util.is_empty
is_nullable: Callable[[Any], bool] = util.is_nullable
is_number: Callable[[Any], bool] = util.is_number
is_some: Callable[[Any], bool] = util.is_some
_CHECKS: Mapping[str, Callable[[Any], Any]] = param_check_table

# Deeper trees are refused when they are compiled (budget.py), so every expression the service accepts
# has its closures; a deeper tree reaching here would be left to the interpreter.
MAX_DEPTH = LIMITS.max_depth

# (context, input collection) -> output collection: what every closure is, as the interpreter's evaluators.
Closure = Callable[[dict[str, Any], Any], Any]
_Param = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Plan:
    """A compiled expression: ``run(ctx, input)`` evaluates it as ``do_eval(ctx, input, node)`` would.

    ``shapes`` names the shapes evaluated directly over the response (e.g. ``answer-weights``);
    ``interpreted`` the node types left to fhirpathpy's interpreter.
    """

    run: Closure
    shapes: frozenset[str]
    interpreted: frozenset[str]


class _NotCompiled(Exception):
    """A node this module leaves to the interpreter (which then does, or fails, as it always does)."""


def compile_plan(node: Mapping[str, Any], constants: Mapping[str, list[Any]]) -> Plan | None:
    """Closures for ``node`` (the expression's root node, as ``do_eval`` would be given it); None when the
    tree is too deep to compile. ``constants`` are the folded constant collections the tree reads."""
    if tree_depth(node, MAX_DEPTH) > MAX_DEPTH:
        return None
    compiler = _Compiler(constants, shapes_allowed=not _reads_leftovers(node))
    try:
        run = compiler.compile(node)
    except RecursionError:
        return None
    return Plan(run, frozenset(compiler.shapes), frozenset(compiler.interpreted))


def _children(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    children = node.get("children")
    if not isinstance(children, list) or not all(isinstance(child, Mapping) for child in children):
        raise _NotCompiled
    return children


def _function_parts(node: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]] | None]:
    """(name, raw parameters) of a FunctionInvocation node, found as the interpreter finds them."""
    (functn,) = _children(node)
    parts = _children(functn)
    if functn.get("type") != "Functn" or not parts or parts[0].get("type") != "Identifier" or len(parts) > 2:
        raise _NotCompiled
    name = identifier(None, None, parts[0])[0]  # type: ignore[no-untyped-call]
    raw_params = None
    if len(parts) == 2:
        if parts[1].get("type") != "ParamList":
            raise _NotCompiled
        if "children" in parts[1]:
            raw_params = _children(parts[1])
    return name, raw_params


# ---- which expressions may have their shapes evaluated directly ----------------------------------------

_CONTEXT_READERS = {"ThisInvocation", "IndexInvocation", "TotalInvocation"}


def _reads_leftovers(node: Mapping[str, Any]) -> bool:
    """Whether some part of the expression may read what an earlier part left in the context.

    The interpreter leaves ``$this`` and ``$index`` set to the last element an iterating function (where,
    repeat ...) looked at. ``$this``, ``$index`` and ``$total`` read them, and so do the arguments of
    functions that are not evaluated per element (``union(x)``, ``round(x)`` ...): the interpreter
    evaluates those on the left-over ``$this``. A shape evaluated directly leaves nothing behind, so it is
    only used in expressions where nothing could read it: none of those three, and no such argument that
    reads its input.
    """
    kind = node.get("type")
    if kind in _CONTEXT_READERS:
        return True
    if kind == "FunctionInvocation":
        try:
            name, raw_params = _function_parts(node)
        except (_NotCompiled, ValueError, KeyError, IndexError):
            return True
        invocation = REGISTRY.get(name)
        params = raw_params or []
        if invocation is None:
            return True
        if "variadic" in invocation:
            kinds: Sequence[Any] = [invocation["variadic"]] * len(params)
        elif "arity" not in invocation:
            return bool(params)
        elif len(params) not in invocation["arity"]:
            return True
        else:
            kinds = invocation["arity"][len(params)]
        for kind_of_param, param in zip(kinds, params, strict=False):
            if _reads_leftovers(param):
                return True
            if kind_of_param not in ("Expr", "Identifier", "TypeSpecifier") and _reads_input(param):
                return True
        return False
    return any(_reads_leftovers(child) for child in node.get("children") or () if isinstance(child, Mapping))


def _reads_input(node: Mapping[str, Any]) -> bool:
    """Whether the node reads its input: a member or function invoked on it (``linkId``, ``count()``).

    In a chain ``a.b.c`` only ``a`` is given the input; the other steps are given what the step before
    them gives (their arguments are looked at by ``_reads_leftovers``).
    """
    kind = node.get("type")
    if kind in _CONTEXT_READERS or kind == "InvocationTerm":
        return True
    children = [child for child in node.get("children") or () if isinstance(child, Mapping)]
    if kind == "InvocationExpression":
        return not children or _reads_input(children[0])
    return any(_reads_input(child) for child in children)


# ---- the compiler --------------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, constants: Mapping[str, list[Any]], *, shapes_allowed: bool) -> None:
        self.constants = constants
        self.shapes_allowed = shapes_allowed
        self.shapes: set[str] = set()
        self.interpreted: set[str] = set()

    def compile(self, node: Mapping[str, Any]) -> Closure:
        build = _BUILDERS.get(str(node.get("type")))
        if build is not None:
            noted = set(self.shapes), set(self.interpreted)
            try:
                return build(self, node)
            except (_NotCompiled, KeyError, IndexError, TypeError, ValueError, AttributeError):
                self.shapes, self.interpreted = noted  # what the node's parts noted is not used after all
        return self._interpret(node)

    def _interpret(self, node: Mapping[str, Any]) -> Closure:
        self.interpreted.add(str(node.get("type")))

        def run(ctx: dict[str, Any], data: Any) -> Any:
            budget: Budget = ctx[BUDGET_KEY]
            ctx["model"] = budget.model  # the interpreter's navigation checks the time as it reads it
            return do_eval(ctx, data, node)  # type: ignore[no-untyped-call]

        return run

    # -- terms ---------------------------------------------------------------------------------------------

    def _first_child(self, node: Mapping[str, Any]) -> Closure:
        return self.compile(_children(node)[0])

    def _literal_term(self, node: Mapping[str, Any]) -> Closure:
        term = node["children"][0]
        if term:
            return self.compile(term)
        text = node["text"]
        return lambda ctx, data: [text]

    def _number(self, node: Mapping[str, Any]) -> Closure:
        (value,) = number_literal(None, None, node)  # type: ignore[no-untyped-call]
        return lambda ctx, data: [value]  # a new list each time: unary minus negates in place

    def _string(self, node: Mapping[str, Any]) -> Closure:
        (value,) = string_literal(None, None, node)  # type: ignore[no-untyped-call]
        return lambda ctx, data: [value]

    def _boolean(self, node: Mapping[str, Any]) -> Closure:
        value = node["text"] == "true"
        return lambda ctx, data: [value]

    def _null(self, node: Mapping[str, Any]) -> Closure:
        return lambda ctx, data: []

    def _external_constant(self, node: Mapping[str, Any]) -> Closure:
        (constant,) = _children(node)
        name = identifier(None, None, _children(constant)[0])[0].replace("`", "")  # type: ignore[no-untyped-call]

        def run(ctx: dict[str, Any], data: Any) -> Any:
            variables = ctx["vars"]
            if name not in variables:
                raise FhirPathError(f"Attempting to access an undefined environment variable: {name}")
            value = variables[name]
            if value is None:
                return []
            if not isinstance(value, list):
                return [value]
            return value

        return run

    @staticmethod
    def _context_value(name: str) -> Closure:
        def run(ctx: dict[str, Any], data: Any) -> Any:
            if name not in ctx:  # outside the function that sets it: the engine fails with the same words
                raise FhirPathError(str(KeyError(name)))
            return arraify(ctx[name])

        return run

    def _this(self, node: Mapping[str, Any]) -> Closure:
        return self._context_value("$this")

    def _index(self, node: Mapping[str, Any]) -> Closure:
        return self._context_value("$index")

    def _total(self, node: Mapping[str, Any]) -> Closure:
        return self._context_value("$total")

    # -- invocations ---------------------------------------------------------------------------------------

    def _invocation(self, node: Mapping[str, Any]) -> Closure:
        if self.shapes_allowed:
            shape = answer_weights_shape(node, self.constants)
            if shape is not None:
                general = self._chain(node)
                self.shapes.add(shape.name)
                direct = shape.evaluate

                def run(ctx: dict[str, Any], data: Any) -> Any:
                    found = direct(ctx)
                    return general(ctx, data) if found is None else found

                return run
        return self._chain(node)

    def _chain(self, node: Mapping[str, Any]) -> Closure:
        steps = [self.compile(child) for child in _children(node)]
        if len(steps) == 2:
            first, second = steps

            def pair(ctx: dict[str, Any], data: Any) -> Any:
                return list(second(ctx, first(ctx, data)))

            return pair

        def run(ctx: dict[str, Any], data: Any) -> Any:
            for step in steps:
                data = step(ctx, data)
            return list(data)

        return run

    def _member(self, node: Mapping[str, Any]) -> Closure:
        (child,) = _children(node)
        if child.get("type") != "Identifier":
            raise _NotCompiled
        key = identifier(None, None, child)[0].replace("`", "")  # type: ignore[no-untyped-call]
        capitalized = is_capitalized(key)
        # The engine always evaluates with the R4 model (the context's is the same model, checking the time).
        reducer = create_reduce_member_invocation(R4_MODEL, key)  # type: ignore[no-untyped-call]

        def run(ctx: dict[str, Any], data: Any) -> Any:
            if isinstance(data, list):
                if capitalized:
                    try:
                        filtered = [x for x in data if x["resourceType"] == key]
                        return [ResourceNode.create_node(x, key) for x in filtered]  # type: ignore[no-untyped-call]
                    except TypeError:
                        pass
                if len(data) < 2:
                    return list(reduce(reducer, data, []))
                # Element by element, checking as the result grows: what each element adds is its own
                # (e.g. a response's items), but many elements may be the same response. (The time this
                # takes is linear in what it builds, so the size bounds it.)
                budget: Budget = ctx[BUDGET_KEY]
                limit = budget.max_items
                result: list[Any] = []
                for element in data:
                    result.extend(reducer([], element))
                    if len(result) > limit:
                        budget.too_many()
                return result
            return []

        return run

    def _function(self, node: Mapping[str, Any]) -> Closure:
        name, raw_params = _function_parts(node)
        invocation = REGISTRY.get(name)
        if invocation is None:
            raise _NotCompiled
        fn = invocation["fn"]
        nullable_input = "nullable_input" in invocation
        if "variadic" in invocation:  # coalesce(): any number of arguments of one kind
            arguments = [self._param(invocation["variadic"], raw) for raw in raw_params or []]

            def variadic(ctx: dict[str, Any], data: Any) -> Any:
                if nullable_input and is_nullable(data):
                    return []
                this = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
                values = [argument(ctx, this) for argument in arguments]
                return arraify(fn(ctx, arraify(data), *values))

            return variadic
        if fn.__name__ == "trace_fn" and raw_params is not None:
            raw_params = raw_params[:1]  # the interpreter ignores trace()'s projection argument
        if "arity" not in invocation:
            if raw_params is not None and not is_empty(raw_params):
                raise _NotCompiled

            def plain(ctx: dict[str, Any], data: Any) -> Any:
                if nullable_input and is_nullable(data):
                    return []
                return arraify(fn(ctx, arraify(data)))

            return plain
        count = len(raw_params) if isinstance(raw_params, list) else 0
        if count not in invocation["arity"]:
            raise _NotCompiled
        params = [
            self._param(kind, raw) for kind, raw in zip(invocation["arity"][count], raw_params or [], strict=True)
        ]
        nullable = "nullable" in invocation

        def run(ctx: dict[str, Any], data: Any) -> Any:
            if nullable_input and is_nullable(data):
                return []
            this = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
            values = [param(ctx, this) for param in params]
            if nullable and (is_nullable(data) or any(is_nullable(value) for value in values)):
                return []
            return arraify(fn(ctx, data, *values))

        return run

    def _param(self, kind: Any, raw: Mapping[str, Any]) -> _Param:
        """The parameter as the interpreter's ``make_param`` prepares it, given (ctx, the input)."""
        if kind == "Expr":
            sub = self.compile(raw)

            def expr(ctx: dict[str, Any], data: Any) -> Any:
                def func(element: Any) -> Any:
                    ctx["$this"] = arraify(element)
                    return sub(ctx, ctx["$this"])

                return func

            return expr
        if kind == "AnyAtRoot":
            sub = self.compile(raw)

            def at_root(ctx: dict[str, Any], data: Any) -> Any:
                ctx["$this"] = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
                return sub(ctx, ctx["$this"])

            return at_root
        if kind == "Identifier":
            if raw["type"] != "TermExpression":
                raise _NotCompiled
            text = raw["text"]
            return lambda ctx, data: text
        if kind == "TypeSpecifier":
            return lambda ctx, data: type_specifier(ctx, data, raw)  # type: ignore[no-untyped-call]
        sub = self.compile(raw)
        if kind == "Any":

            def any_value(ctx: dict[str, Any], data: Any) -> Any:
                ctx["$this"] = data
                return sub(ctx, data)

            return any_value

        def typed(ctx: dict[str, Any], data: Any) -> Any:
            ctx["$this"] = data
            res = sub(ctx, data)
            node_type = kind
            if isinstance(node_type, list):
                if len(res) == 0:
                    return []
                node_type = node_type[0]
            if len(res) > 1:
                try:
                    shown = json.dumps(res)
                except TypeError as exc:  # as the engine fails on what JSON cannot show
                    raise FhirPathError(str(exc)) from exc
                raise FhirPathError("Unexpected collection" + shown + "; expected singleton of type " + node_type)
            if len(res) == 0:
                return []
            if node_type not in _CHECKS:
                raise FhirPathError("Implement me for " + node_type)
            return _CHECKS[node_type](res[0])

        return typed

    # -- operators -----------------------------------------------------------------------------------------

    def _infix(self, name: str, children: list[Mapping[str, Any]]) -> Closure:
        invocation = REGISTRY.get(name)
        if invocation is None or "fn" not in invocation or len(children) != 2:
            raise _NotCompiled
        kinds = invocation["arity"][2]
        if kinds is None:
            raise _NotCompiled
        left, right = (self._param(kind, child) for kind, child in zip(kinds, children, strict=True))
        fn = invocation["fn"]
        nullable = "nullable" in invocation

        def run(ctx: dict[str, Any], data: Any) -> Any:
            a = left(ctx, data)
            b = right(ctx, data)
            if nullable and (is_nullable(a) or is_nullable(b)):
                return []
            return arraify(fn(ctx, a, b))

        return run

    def _operator(self, node: Mapping[str, Any]) -> Closure:
        return self._infix(node["terminalNodeText"][0], _children(node))

    def _union(self, node: Mapping[str, Any]) -> Closure:
        return self._infix("|", _children(node))

    def _polarity(self, node: Mapping[str, Any]) -> Closure:
        sign = node["terminalNodeText"][0]
        sub = self._first_child(node)

        def run(ctx: dict[str, Any], data: Any) -> Any:
            rtn = sub(ctx, data)
            if len(rtn) != 1:
                raise FhirPathError("Unary " + sign + " can only be applied to an individual number.")
            if not is_number(rtn[0]):
                raise FhirPathError("Unary " + sign + " can only be applied to a number.")
            if sign == "-":
                rtn[0] = -rtn[0]
            return rtn

        return run

    def _indexer(self, node: Mapping[str, Any]) -> Closure:
        collection, index = (self.compile(child) for child in _children(node)[:2])

        def run(ctx: dict[str, Any], data: Any) -> Any:
            coll = collection(ctx, data)
            idx = index(ctx, data)
            if is_empty(idx):
                return []
            number = int(idx[0])
            if coll is not None and is_some(number) and len(coll) > number and number >= 0:
                return [coll[number]]
            return []

        return run


def _alias(names: Mapping[str, str]) -> Callable[[_Compiler, Mapping[str, Any]], Closure]:
    def build(compiler: _Compiler, node: Mapping[str, Any]) -> Closure:
        operator = node["terminalNodeText"][0]
        if operator not in names:
            raise _NotCompiled
        return compiler._infix(names[operator], _children(node))

    return build


_BUILDERS: dict[str, Callable[[_Compiler, Mapping[str, Any]], Closure]] = {
    "TermExpression": _Compiler._first_child,
    "InvocationTerm": _Compiler._first_child,
    "ParenthesizedTerm": _Compiler._first_child,
    "LiteralTerm": _Compiler._literal_term,
    "NumberLiteral": _Compiler._number,
    "StringLiteral": _Compiler._string,
    "BooleanLiteral": _Compiler._boolean,
    "NullLiteral": _Compiler._null,
    "ExternalConstantTerm": _Compiler._external_constant,
    "ThisInvocation": _Compiler._this,
    "IndexInvocation": _Compiler._index,
    "TotalInvocation": _Compiler._total,
    "InvocationExpression": _Compiler._invocation,
    "MemberInvocation": _Compiler._member,
    "FunctionInvocation": _Compiler._function,
    "PolarityExpression": _Compiler._polarity,
    "IndexerExpression": _Compiler._indexer,
    "UnionExpression": _Compiler._union,
    "MembershipExpression": _alias({"contains": "containsOp", "in": "inOp"}),
    "TypeExpression": _alias({"is": "isOp", "as": "asOp"}),
    "InequalityExpression": _Compiler._operator,
    "AdditiveExpression": _Compiler._operator,
    "MultiplicativeExpression": _Compiler._operator,
    "EqualityExpression": _Compiler._operator,
    "OrExpression": _Compiler._operator,
    "ImpliesExpression": _Compiler._operator,
    "AndExpression": _Compiler._operator,
    "XorExpression": _Compiler._operator,
}
