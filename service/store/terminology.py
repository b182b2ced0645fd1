"""ValueSet and CodeSystem look-ups by canonical, and the expansions worked out from them (kept per stored version)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.models import CodeSystemRow, TerminologyRow, ValueSetRow

Row = TypeVar("Row", bound=TerminologyRow)
Value = TypeVar("Value")


def find_by_canonical(session: Session, model: type[Row], url: str, version: str | None) -> Row | None:
    """The live resource a canonical names: the exact version, or the most recently updated one of the url."""
    query = select(model).where(model.url == url, model.deleted.is_(False))
    if version is not None:
        return session.scalars(query.where(model.version == version)).one_or_none()
    return session.scalars(query.order_by(model.last_updated.desc(), model.pk.desc()).limit(1)).first()


def value_set(session: Session, canonical: str) -> ValueSetRow | None:
    url, _, version = canonical.partition("|")
    return find_by_canonical(session, ValueSetRow, url, version or None)


def code_system(session: Session, url: str, version: str | None) -> CodeSystemRow | None:
    return find_by_canonical(session, CodeSystemRow, url, version)


class VersionCache(Generic[Value]):
    """Values worked out from one stored version of a resource ((type, id, versionId, ...) never changes content), the
    most recently used ``capacity`` kept; one per process and database (it lives in Services)."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._values: OrderedDict[tuple[Any, ...], Value] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], make: Callable[[], Value]) -> Value:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = make()
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._capacity:
                self._values.popitem(last=False)
        return value
