"""Regular expressions a Questionnaire supplies, run by RE2: linear time, so no pattern can stall a worker.

Python's ``re`` backtracks: ``(a+)+$`` against forty a's and a ``!`` runs for hours. RE2 (google-re2)
never backtracks; in exchange it has no backreferences and no lookaround, and such a pattern is refused
with a reason rather than run by another engine. Used for the item ``regex`` extension (validation) and
FHIRPath's ``matches()`` and ``replaceMatches()``.
"""

from __future__ import annotations

import functools
from typing import Any

import re2  # type: ignore[import-untyped]


class PatternError(ValueError):
    """A pattern RE2 cannot run; the message says why."""


Pattern = Any  # re2's compiled pattern: search, fullmatch, finditer, sub as in ``re``


def _options(dot_all: bool) -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason is in the exception; RE2 would also write it to stderr
    options.dot_nl = dot_all
    return options


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str, dot_all: bool) -> Pattern | str:
    try:
        return re2.compile(pattern, options=_options(dot_all))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return (
            f"the regular expression {pattern!r} cannot be used ({text}); patterns are run by RE2, in linear "
            "time, which has no backreferences or lookaround"
        )


def compile_pattern(pattern: str, *, dot_all: bool = False) -> Pattern:
    """``pattern`` compiled (cached); raises PatternError saying why it cannot be run.

    ``dot_all``: ``.`` matches a newline too (FHIRPath ``matches()``, as fhirpathpy runs it).
    """
    found = _compiled(pattern, dot_all)
    if isinstance(found, str):
        raise PatternError(found)
    return found
