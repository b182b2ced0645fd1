"""Work done once per JSON object: a value derived from a parsed resource (a Questionnaire's scoring rules, its
validation index), kept for as long as the same object comes back with the same content.

Callers pass the same parsed Questionnaire again and again (the store keeps one per stored version), so the
object's identity finds the entry; its content, serialised and compared, makes sure the object was not changed
since (a caller's draft may be edited in place). Comparing the serialised content costs far less than the work
it saves, and it is exact.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Generic, TypeVar

import orjson

Value = TypeVar("Value")


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def content_of(resource: Mapping[str, Any]) -> bytes:
    """The resource serialised, for comparing content (Decimals as numbers)."""
    return orjson.dumps(resource, default=json_default)


class PerObject(Generic[Value]):
    """``derive(resource)`` computed once per object and content; the most recently used ``capacity`` kept."""

    def __init__(self, derive: Callable[[Mapping[str, Any]], Value], capacity: int = 128) -> None:
        self._derive = derive
        self._capacity = capacity
        # id -> (the object, so that its id is not reused while the entry lives; its content as seen; the value)
        self._seen: OrderedDict[int, tuple[Mapping[str, Any], bytes, Value]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, resource: Mapping[str, Any]) -> Value:
        try:
            content = content_of(resource)
        except TypeError:  # not serialisable as JSON (e.g. nested past orjson's limit): worked out, not kept
            return self._derive(resource)
        key = id(resource)
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen[0] is resource and seen[1] == content:
                self._seen.move_to_end(key)
                return seen[2]
        value = self._derive(resource)
        with self._lock:
            self._seen[key] = (resource, content, value)
            self._seen.move_to_end(key)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
        return value
