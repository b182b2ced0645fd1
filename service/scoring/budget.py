"""How much FHIRPath evaluation may cost: the limits in one place, and the budget each response spends.

A Questionnaire's expressions are written by whoever may publish Questionnaires, and the service runs
them on every response (scoring, enableWhenExpression, constraints). Without limits one expression can
build 10^8 items from a few answers, or run for minutes, and take the worker down with it. Every limit
here is far beyond what a real PROM needs (the built-in instruments and the SDC examples stay under a
hundredth of each), so only an expression that was never going to finish meets one. A breach raises
``BudgetExceeded``, a ``FhirPathError`` that callers report as an error naming the expression.

Where the limits are enforced, on the compiled closures and on fhirpathpy's interpreter alike:

- every function and operator of the engine's table (``ENGINE_FUNCTIONS``) checks the size of what it
  returns and the time; the functions that build collections item by item (``select``, ``repeat``,
  ``children``, ``descendants``...) check as they build, so nothing over the limit is ever built whole;
- member navigation checks as it goes: the compiled closure itself, the interpreter through the model
  it reads once for each element it visits (``BudgetedModel``);
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
    max_comparisons: int = 2_000_000  # item pairs compared by intersect(), exclude(), subsetOf(), supersetOf()
    max_string_length: int = 1_000_000  # characters of a string an expression builds (a resource's are < 100,000)
    max_integer_digits: int = 100  # FHIRPath integers are 32-bit; Python's would grow without end
    max_depth: int = 128  # levels of the expression's syntax tree (the deepest real one has about 25)
    max_expression_length: int = 4_096  # characters of an expression (the longest real one has about 400)
    seconds: float = 2.0  # wall-clock time of all the expressions evaluated over one response


LIMITS = Limits()


class BudgetExceeded(FhirPathError):
    """An expression went over one of the limits: an error in the Questionnaire, never a warning."""


class Budget:
    """The limits and the deadline of one response's evaluations (the deadline is shared by all of them)."""

    __slots__ = ("limits", "deadline", "model", "_max_items", "_integer_bound")

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.model = BudgetedModel(self)
        self._max_items = limits.max_items
        self._integer_bound = 10**limits.max_integer_digits

    def tick(self) -> None:
        """Stop once the time is up."""
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(
                f"it ran out of time: the expressions evaluated over one response may take {self.limits.seconds:g} s"
            )

    def check(self, collection: Any) -> None:
        """Stop when ``collection`` (any result) has too many items, or the time is up."""
        if type(collection) is list and len(collection) > self._max_items:
            self.too_many()
        if time.monotonic() > self.deadline:
            self.tick()

    def too_many(self) -> None:
        raise BudgetExceeded(
            f"it builds a collection of more than {self._max_items:,} items, the most an expression may build"
        )

    def check_length(self, length: int) -> None:
        """Stop before a string of ``length`` characters is built."""
        if length > self.limits.max_string_length:
            raise BudgetExceeded(
                f"it builds a string of {length:,} characters; at most {self.limits.max_string_length:,} are allowed"
            )

    def check_values(self, result: Any) -> None:
        """Stop when a value ``result`` holds is too big a string or integer."""
        for value in result if type(result) is list else (result,):
            data = value.data if isinstance(value, ResourceNode) else value
            if type(data) is str:
                self.check_length(len(data))
            elif type(data) is int and not -self._integer_bound < data < self._integer_bound:
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

# Functions whose result may hold a bigger string or integer than their inputs.
_GROWING = frozenset({"+", "-", "*", "&", "encode", "decode", "upper", "lower", "toString"})
# Functions comparing every item of their input with every item of their argument.
_PAIRWISE = frozenset({"intersect", "exclude", "subsetOf", "supersetOf"})


def _budgeted(name: str, invocation: Invocation) -> Invocation:
    fn: Callable[..., Any] = invocation["fn"]
    growing = name in _GROWING
    pairwise = name in _PAIRWISE

    @functools.wraps(fn)  # keeps the name: the engine treats trace() by its function's name
    def checked(ctx: dict[str, Any], *args: Any) -> Any:
        budget: Budget = ctx[BUDGET_KEY]
        if pairwise and len(args) == 2 and isinstance(args[0], list) and isinstance(args[1], list):
            budget.check_pairs(args[0], args[1])
        result = fn(ctx, *args)
        budget.check(result)
        if growing:
            budget.check_values(result)
        return result

    return {**invocation, "fn": checked}


def _engine_functions() -> dict[str, Invocation]:
    table = {**cast(Mapping[str, Invocation], invocation_registry), **FUNCTIONS}
    return {name: _budgeted(name, entry) if "fn" in entry else entry for name, entry in table.items()}


# Every function and operator the engine knows (fhirpathpy's, with the service's own in their place), each
# checking the budget. Given to the interpreter as its user table, it replaces fhirpathpy's every entry.
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
