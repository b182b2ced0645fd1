"""How much FHIRPath evaluation may cost: the limits in one place, and the budget each response spends.

A Questionnaire's expressions are written by whoever may publish Questionnaires, and the service runs
them on every response (scoring, enableWhenExpression, constraints). Without limits one expression can
build 10^8 items from a few answers, or run for minutes, and take the worker down with it. Every limit
here is far beyond what a real PROM needs (each notes what the built-in instruments and the SDC examples
use), so only an expression that was never going to finish meets one. A breach raises
``BudgetExceeded``, a ``FhirPathError`` that callers report as an error naming the expression.

Where the limits are enforced, on the compiled closures and on fhirpathpy's interpreter alike:

- the engine's function table (``ENGINE_FUNCTIONS``, which both paths use): the functions that build
  collections item by item (``select``, ``repeat``, ``children``, ``descendants``) check as they build, so
  nothing over the limit is ever built whole; those that may return more than they were given
  (``combine``, ``|``, ``split``...) check what they return, and so do those that compute strings and
  integers (``&``, ``+``, ``*``...); those that compare every pair of items check the number of pairs
  first; those that evaluate an argument per element (``where``, ``select``, ``exists``, ``all``,
  ``aggregate``...) check the time as they go. The others return no more than they are given, in time
  linear in it, and check nothing;
- member navigation: the compiled closure checks as it builds; fhirpathpy's interpreter checks the time
  through the model it reads once for each element it visits (``BudgetedModel``), and its result is
  checked by whatever comes next (at the latest by ``evaluate``, which also checks the time before each
  expression starts);
- the expression's length and its nesting are checked once, when it is compiled.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from typing import Any, cast

from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from service.scoring.functions import BUDGET_KEY, FUNCTIONS, FhirPathError

R4_MODEL: Mapping[str, Any] = models["r4"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one expression, or all the expressions evaluated over one response, may use."""

    max_items: int = 50_000  # items in any collection an expression builds (a PROM response has a few hundred)
    max_comparisons: int = 2_000_000  # pairs compared by intersect(), exclude(), subsetOf(), supersetOf() (none used)
    max_string_length: int = 1_000_000  # characters of a string an expression builds (a resource's are < 100,000)
    max_integer_digits: int = 100  # FHIRPath integers are 32-bit (10 digits); Python's would grow without end
    max_depth: int = 128  # levels of the expression's syntax tree (the deepest real one has about 25)
    max_expression_length: int = 4_096  # characters of an expression (the longest real one has about 400)
    seconds: float = 2.0  # wall-clock time of all the expressions over one response (a PROM takes < 1 ms)


LIMITS = Limits()


class BudgetExceeded(FhirPathError):
    """An expression went over one of the limits: an error in the Questionnaire, never a warning."""


@functools.lru_cache(maxsize=8)
def _integer_bound(digits: int) -> int:
    bound: int = 10**digits
    return bound


class Budget:
    """The limits and the deadline of one response's evaluations (the deadline is shared by all of them)."""

    __slots__ = ("limits", "deadline", "max_items", "max_string_length", "integer_bound", "_model")

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        # Read on every step that could overrun them:
        self.max_items = limits.max_items
        self.max_string_length = limits.max_string_length
        self.integer_bound = _integer_bound(limits.max_integer_digits)
        self._model: BudgetedModel | None = None

    @property
    def model(self) -> BudgetedModel:
        """The R4 model for fhirpathpy's interpreter, checking the time (made when the interpreter first runs)."""
        if self._model is None:
            self._model = BudgetedModel(self)
        return self._model

    def tick(self) -> None:
        """Stop once the time is up."""
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(
                f"it ran out of time: the expressions evaluated over one response may take {self.limits.seconds:g} s"
            )

    def check(self, collection: Any) -> None:
        """Stop when ``collection`` (any result) has too many items, or the time is up."""
        if type(collection) is list and len(collection) > self.max_items:
            self.too_many()
        self.tick()

    def too_many(self) -> None:
        raise BudgetExceeded(
            f"it builds a collection of more than {self.max_items:,} items, the most an expression may build"
        )

    def check_length(self, length: int) -> None:
        """Stop before a string of ``length`` characters is built."""
        if length > self.max_string_length:
            raise BudgetExceeded(
                f"it builds a string of {length:,} characters; at most {self.limits.max_string_length:,} are allowed"
            )

    def check_value(self, value: Any) -> None:
        """Stop when ``value`` is too big a string or integer."""
        data = value.data if isinstance(value, ResourceNode) else value
        if type(data) is str:
            self.check_length(len(data))
        elif type(data) is int and not -self.integer_bound < data < self.integer_bound:
            raise BudgetExceeded(f"it computes an integer of more than {self.limits.max_integer_digits} digits")

    def check_pairs(self, first: Sized, second: Sized) -> None:
        pairs = len(first) * len(second)
        if pairs > self.limits.max_comparisons:
            raise BudgetExceeded(
                f"it compares {len(first):,} items with {len(second):,} ({pairs:,} pairs); "
                f"at most {self.limits.max_comparisons:,} pairs are allowed"
            )


class BudgetedModel(dict[str, Any]):
    """fhirpathpy's R4 model for the interpreter's evaluation context, checking the time on every read.

    The interpreter's member navigation and children() read the model once for every element they visit,
    and nothing else of theirs can be reached from here: these reads are where a long navigation stops.
    """

    def __init__(self, budget: Budget) -> None:
        super().__init__(R4_MODEL)
        self._budget = budget

    def __getitem__(self, key: str) -> Any:
        self._budget.tick()
        return super().__getitem__(key)


# ---- the function table both evaluation paths use ------------------------------------------------------

Invocation = Mapping[str, Any]

# Functions whose result may be a bigger collection than their inputs. (select, repeat, children and
# descendants are the service's own, and check as they build.)
_COLLECTING = frozenset({"combine", "union", "|", "split", "toChars"})
# Functions whose result may be a bigger string or integer than their inputs.
_COMPUTING = frozenset({"+", "-", "*", "&", "encode", "decode", "upper", "lower"})
# Functions comparing every item of their input with every item of their argument.
_PAIRWISE = frozenset({"intersect", "exclude", "subsetOf", "supersetOf"})
# fhirpathpy's functions that evaluate an argument once for each element of their input (where, select and
# repeat are the service's own, and check the time themselves).
_ITERATING = frozenset({"exists", "all", "aggregate"})


def _collecting(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def checked(ctx: dict[str, Any], *args: Any) -> Any:
        result = fn(ctx, *args)
        budget: Budget = ctx[BUDGET_KEY]
        budget.check(result)
        return result

    return checked


def _computing(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def checked(ctx: dict[str, Any], *args: Any) -> Any:
        result = fn(ctx, *args)
        kind = type(result)
        if kind is int or kind is str or kind is list or isinstance(result, ResourceNode):
            budget: Budget = ctx[BUDGET_KEY]
            for value in result if kind is list else (result,):
                budget.check_value(value)
        return result

    return checked


def _pairwise(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def checked(ctx: dict[str, Any], first: Any, second: Any) -> Any:
        if isinstance(first, list) and isinstance(second, list):
            budget: Budget = ctx[BUDGET_KEY]
            budget.check_pairs(first, second)
        return fn(ctx, first, second)

    return checked


def _iterating(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def checked(ctx: dict[str, Any], data: Any, *args: Any) -> Any:
        budget: Budget = ctx[BUDGET_KEY]

        def ticking(argument: Callable[[Any], Any]) -> Callable[[Any], Any]:
            def run(element: Any) -> Any:
                budget.tick()
                return argument(element)

            return run

        return fn(ctx, data, *(ticking(arg) if callable(arg) else arg for arg in args))

    return checked


def _budgeted(name: str, invocation: Invocation) -> Invocation:
    """The invocation with its function checking the budget where it can overrun it (most cannot: a result
    no bigger than the inputs, in time linear in them, needs no check)."""
    if name in _COLLECTING:
        return {**invocation, "fn": _collecting(invocation["fn"])}
    if name in _COMPUTING:
        return {**invocation, "fn": _computing(invocation["fn"])}
    if name in _PAIRWISE:
        return {**invocation, "fn": _pairwise(invocation["fn"])}
    if name in _ITERATING:
        return {**invocation, "fn": _iterating(invocation["fn"])}
    return invocation


def _engine_functions() -> dict[str, Invocation]:
    table = {**cast(Mapping[str, Invocation], invocation_registry), **FUNCTIONS}
    return {name: _budgeted(name, entry) if "fn" in entry else entry for name, entry in table.items()}


# Every function and operator the engine knows (fhirpathpy's, with the service's own in their place), those
# that could overrun the budget checking it. Given to the interpreter as its user table, it replaces every
# entry of fhirpathpy's: both paths run exactly these functions.
ENGINE_FUNCTIONS: Mapping[str, Invocation] = _engine_functions()


def tree_depth(node: Mapping[str, Any], limit: float = math.inf) -> int:
    """Levels of a syntax tree (counting stops a little past ``limit``); no recursion, so any depth is safe."""
    deepest, pending = 0, [(node, 1)]
    while pending:
        current, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            break
        pending.extend((child, depth + 1) for child in current.get("children") or () if isinstance(child, Mapping))
    return deepest
