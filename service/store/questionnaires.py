"""Questionnaire look-ups the use cases need: resolving a canonical, parsed copies, and who still refers to one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, exists, select
from sqlalchemy.orm import Session, defer, lazyload

from service.fhir import jsonio
from service.store.models import QuestionnaireResponseRow, QuestionnaireRow

Found = TypeVar("Found")


def find_by_canonical(session: Session, url: str, version: str | None) -> QuestionnaireRow | None:
    """The live Questionnaire a canonical names: the exact version, or the most recently updated one.

    Its JSON is loaded only when read (within the session): callers that cache parsed Questionnaires by
    (id, version) skip it."""
    query = (
        select(QuestionnaireRow)
        .options(defer(QuestionnaireRow.resource_json), lazyload(QuestionnaireRow.codes))
        .where(QuestionnaireRow.url == url, QuestionnaireRow.deleted.is_(False))
    )
    if version is not None:
        return session.scalars(query.where(QuestionnaireRow.version == version)).one_or_none()
    return session.scalars(query.order_by(QuestionnaireRow.last_updated.desc()).limit(1)).one_or_none()


def find_by_id(session: Session, resource_id: str) -> QuestionnaireRow | None:
    return session.scalars(
        select(QuestionnaireRow)
        .options(defer(QuestionnaireRow.resource_json), lazyload(QuestionnaireRow.codes))
        .where(QuestionnaireRow.id == resource_id, QuestionnaireRow.deleted.is_(False))
    ).one_or_none()


@dataclass(frozen=True, slots=True)
class QuestionnaireRef:
    """Which stored Questionnaire version a canonical names, without its JSON (parsed copies are cached by
    (id, version_id), which never change)."""

    pk: int
    id: str
    version_id: int
    url: str | None
    version: str | None


_Q = QuestionnaireRow
_IDENTITY = (_Q.pk, _Q.id, _Q.version_id, _Q.url, _Q.version)
# Built once with bound parameters: resolving runs on every submission.
_REF_BY_ID = select(*_IDENTITY).where(_Q.id == bindparam("id"), _Q.deleted.is_(False))
_REF_BY_VERSION = select(*_IDENTITY).where(
    _Q.url == bindparam("url"), _Q.version == bindparam("version"), _Q.deleted.is_(False)
)
_REF_LATEST = (
    select(*_IDENTITY)
    .where(_Q.url == bindparam("url"), _Q.deleted.is_(False))
    .order_by(_Q.last_updated.desc())
    .limit(1)
)
_JSON = select(_Q.resource_json).where(_Q.pk == bindparam("pk"))


def _ref(
    session: Session, query: Select[int, str, int, str | None, str | None], parameters: dict[str, Any]
) -> QuestionnaireRef | None:
    found = session.connection().execute(query, parameters).first()
    return QuestionnaireRef(found.pk, found.id, found.version_id, found.url, found.version) if found else None


def ref_by_canonical(session: Session, url: str, version: str | None) -> QuestionnaireRef | None:
    """As find_by_canonical, the identity only."""
    if version is not None:
        return _ref(session, _REF_BY_VERSION, {"url": url, "version": version})
    return _ref(session, _REF_LATEST, {"url": url})


def ref_by_id(session: Session, resource_id: str) -> QuestionnaireRef | None:
    return _ref(session, _REF_BY_ID, {"id": resource_id})


def refs_with_status(session: Session, statuses: tuple[str, ...]) -> list[QuestionnaireRef]:
    """Every live Questionnaire version with one of these statuses (its identity only), in url order."""
    Q = QuestionnaireRow
    rows = session.execute(
        select(Q.pk, Q.id, Q.version_id, Q.url, Q.version)
        .where(Q.status.in_(statuses), Q.deleted.is_(False))
        .order_by(Q.url, Q.pk)
    )
    return [QuestionnaireRef(row.pk, row.id, row.version_id, row.url, row.version) for row in rows]


def json_of(session: Session, pk: int) -> str | None:
    found: str | None = session.connection().execute(_JSON, {"pk": pk}).scalar()
    return found


def is_answered(session: Session, questionnaire_pk: int) -> bool:
    """Whether any live response refers to this Questionnaire."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    QuestionnaireResponseRow.questionnaire_pk == questionnaire_pk,
                    QuestionnaireResponseRow.deleted.is_(False),
                )
            )
        )
    )


def _resolve(
    canonical: str, base_url: str, by_id: Callable[[str], Found], by_url: Callable[[str, str | None], Found]
) -> Found:
    local_prefix = base_url.rstrip("/") + "/Questionnaire/"
    if canonical.startswith(local_prefix) or canonical.startswith("Questionnaire/"):
        found = by_id(canonical.rsplit("/", 1)[-1].split("|")[0])
        if found is not None:
            return found
    url, _, version = canonical.partition("|")
    return by_url(url, version or None)


def resolve_questionnaire(session: Session, canonical: str, base_url: str) -> QuestionnaireRow | None:
    """What a response's ``questionnaire`` names: ``url|version``, ``url`` (the latest version), or
    ``Questionnaire/id`` (also as an absolute URL on this server)."""
    return _resolve(
        canonical,
        base_url,
        lambda resource_id: find_by_id(session, resource_id),
        lambda url, version: find_by_canonical(session, url, version),
    )


def resolve_reference(session: Session, canonical: str, base_url: str) -> QuestionnaireRef | None:
    """As resolve_questionnaire, the identity of the version only (one small query)."""
    return _resolve(
        canonical,
        base_url,
        lambda resource_id: ref_by_id(session, resource_id),
        lambda url, version: ref_by_canonical(session, url, version),
    )


class QuestionnaireCache:
    """Parsed Questionnaires by (id, version): a stored version never changes, so each is parsed once."""

    def __init__(self, capacity: int = 256) -> None:
        self._entries: dict[tuple[str, int], dict[str, Any]] = {}
        self._capacity = capacity

    def get(self, session: Session, ref: QuestionnaireRef) -> dict[str, Any]:
        key = (ref.id, ref.version_id)
        found = self._entries.get(key)
        if found is None:
            text = json_of(session, ref.pk)
            assert text is not None, "a resolved Questionnaire version has its JSON"
            found = jsonio.loads_object(text.encode())
            if len(self._entries) >= self._capacity:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = found
        return found

    def clear(self) -> None:
        """Forget every parsed copy (after a rolled-back transaction that may have read versions it wrote)."""
        self._entries.clear()
