"""Terminology: ValueSets and CodeSystems as stored, versioned definitions; $expand, $validate-code and $lookup over
them; the answer value sets QuestionnaireResponse validation resolves; and loading the shipped terminology.

A ValueSet is expanded from what is held here: its concept lists, the CodeSystems stored with their concepts
(``content`` complete) and the other ValueSets stored. A value set that needs a code system not held (all of
LOINC, SNOMED CT) is refused with a 422 naming what is missing, never answered with part of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.auth.access import UNRESTRICTED, Grant
from service.definitions import definition_files
from service.fhir import jsonio
from service.fhir import terminology as engine
from service.fhir.dates import instant_text, utcnow
from service.fhir.errors import BadRequest, FhirError, NotFound, Unprocessable
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.fhir.versions import StoredVersion
from service.questionnaires import LoadReport
from service.services import Services
from service.store import terminology as store
from service.store.kinds import CODE_SYSTEM, VALUE_SET, ResourceKind
from service.store.models import CodeSystemRow, ResourceRow, TerminologyRow, ValueSetRow
from service.store.repository import ResourceRepository
from service.validation import ValueSetResolver
from service.writes import (
    WriteResult,
    create,
    current_resource,
    delete_resource,
    insert,
    refusing_conflicts,
    replace,
    row_to_update,
    update,
)

PUBLICATION_STATUSES = ("draft", "active", "retired", "unknown")
CODE_SYSTEM_CONTENT = ("not-present", "example", "fragment", "complete", "supplement")
ISO_3166 = "urn:iso:std:iso:3166"
ISO_3166_2 = "urn:iso:std:iso:3166:-2"
DEFAULT_COUNT = 1000  # $expand without count: at most this many concepts (a client pages with offset)
MAX_COUNT = 10000


# checks ------------------------------------------------------------------------------------------------------


def _status(resource: Mapping[str, Any], resource_type: str) -> None:
    status = resource.get("status")
    if status not in PUBLICATION_STATUSES:
        raise BadRequest(
            Issue(
                "error",
                "code-invalid",
                f"{resource_type}.status must be one of {', '.join(PUBLICATION_STATUSES)}, got {status!r}",
                f"{resource_type}.status",
            )
        )


def check_code_system(resource: Mapping[str, Any]) -> None:
    """What a stored CodeSystem must be: a url (what value sets include it by), a content code, unique codes."""
    _status(resource, "CodeSystem")
    problems = []
    if not isinstance(resource.get("url"), str) or not resource["url"]:
        problems.append(Issue("error", "required", "CodeSystem.url is required here", "CodeSystem.url"))
    if resource.get("content") not in CODE_SYSTEM_CONTENT:
        problems.append(
            Issue(
                "error",
                "code-invalid",
                f"CodeSystem.content must be one of {', '.join(CODE_SYSTEM_CONTENT)}",
                "CodeSystem.content",
            )
        )
    seen: set[str] = set()
    for code in _codes(resource.get("concept"), 0):
        if code in seen:
            problems.append(Issue("error", "duplicate", f"CodeSystem code {code!r} is defined twice", "CodeSystem"))
        seen.add(code)
    if problems:
        raise Unprocessable(problems)


def _codes(entries: object, depth: int) -> Iterator[str]:
    for entry in entries if isinstance(entries, list) and depth < 32 else ():
        if isinstance(entry, Mapping):
            if isinstance(entry.get("code"), str):
                yield entry["code"]
            yield from _codes(entry.get("concept"), depth + 1)


def check_value_set(resource: Mapping[str, Any]) -> None:
    _status(resource, "ValueSet")
    compose = resource.get("compose")
    if compose is None:
        return
    for include in (compose.get("include") or []) + (compose.get("exclude") or []):
        if isinstance(include, Mapping) and not include.get("system") and not include.get("valueSet"):
            raise Unprocessable(
                Issue(
                    "error",
                    "required",
                    "Each ValueSet.compose include and exclude names a system or a valueSet",
                    "ValueSet.compose.include",
                )
            )


CHECKS = {"ValueSet": check_value_set, "CodeSystem": check_code_system}
KINDS = {"ValueSet": VALUE_SET, "CodeSystem": CODE_SYSTEM}


# writes ------------------------------------------------------------------------------------------------------


def _create(kind: ResourceKind) -> Any:
    def use_case(
        services: Services, resource: dict[str, Any], grant: Grant, *, if_none_exist: str | None = None
    ) -> WriteResult:
        CHECKS[kind.resource_type](resource)
        with refusing_conflicts(kind):
            return create(services, kind, resource, grant, patient=None, if_none_exist=if_none_exist)

    use_case.__doc__ = f"POST {kind.resource_type}."
    return use_case


def _update(kind: ResourceKind) -> Any:
    def use_case(
        services: Services, resource_id: str, resource: dict[str, Any], grant: Grant, *, if_match: int | None
    ) -> WriteResult:
        return update(
            services, kind, resource_id, resource, grant, patient=None, if_match=if_match,
            check=lambda: CHECKS[kind.resource_type](resource),
        )  # fmt: skip

    use_case.__doc__ = f"PUT {kind.resource_type}/{{id}}: a new version (the expansions of the old one are dropped)."
    return use_case


def _delete(kind: ResourceKind) -> Any:
    def use_case(services: Services, resource_id: str, grant: Grant) -> StoredVersion | None:
        return delete_resource(services, kind, resource_id, grant)

    use_case.__doc__ = f"DELETE {kind.resource_type}/{{id}} (its history is kept)."
    return use_case


create_value_set = _create(VALUE_SET)
update_value_set = _update(VALUE_SET)
delete_value_set = _delete(VALUE_SET)
create_code_system = _create(CODE_SYSTEM)
update_code_system = _update(CODE_SYSTEM)
delete_code_system = _delete(CODE_SYSTEM)


# expansion ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expanded:
    """A ValueSet's whole expansion (or why it cannot be expanded here)."""

    value_set: Mapping[str, Any]
    concepts: tuple[engine.Concept, ...] = ()
    missing: tuple[str, ...] = ()  # what is not held: the value set cannot be expanded
    unsupported: str | None = None

    def listed(self) -> Mapping[str, Any]:
        """The ValueSet as response validation reads it: with its whole expansion when it could be made, else as
        stored (the validator then says what it could not check)."""
        if self.missing or self.unsupported:
            return self.value_set
        listed = {key: value for key, value in self.value_set.items() if key not in ("compose", "expansion")}
        listed["expansion"] = {
            "timestamp": "2000-01-01T00:00:00Z",
            "total": len(self.concepts),
            "contains": [concept.as_contains() for concept in self.concepts],
        }
        return listed


class _Held:
    """Look-ups of CodeSystems and ValueSets held, within one read session (each parsed once)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._parsed: dict[tuple[str, str, str | None], Mapping[str, Any] | None] = {}

    def code_system(self, url: str, version: str | None) -> Mapping[str, Any] | None:
        key = ("CodeSystem", url, version)
        if key not in self._parsed:
            self._parsed[key] = _json(store.code_system(self._session, url, version))
        return self._parsed[key]

    def value_set(self, canonical: str) -> Mapping[str, Any] | None:
        key = ("ValueSet", canonical, None)
        if key not in self._parsed:
            self._parsed[key] = _json(store.value_set(self._session, canonical))
        return self._parsed[key]


def _json(row: TerminologyRow | None) -> Mapping[str, Any] | None:
    if row is None or row.resource_json is None:
        return None
    return jsonio.loads_object(row.resource_json.encode())


def _terminology_stamp(session: Session) -> tuple[Any, ...]:
    """What changes whenever any stored CodeSystem or ValueSet does: expansions depend on the ones they include."""
    stamps = []
    for model in (CodeSystemRow, ValueSetRow):
        stamps.append(
            tuple(
                session.execute(
                    select(func.count(model.pk), func.max(model.last_updated), func.sum(model.version_id))
                ).one()
            )
        )
    return tuple(stamps)


def _expand_held(session: Session, value_set: Mapping[str, Any]) -> Expanded:
    held = _Held(session)
    try:
        concepts = engine.expand(value_set, held.code_system, held.value_set)
    except engine.NotHeld as exc:
        return Expanded(value_set, missing=tuple(exc.missing))
    except engine.Unsupported as exc:
        return Expanded(value_set, unsupported=str(exc))
    return Expanded(value_set, tuple(concepts))


def _expanded_row(services: Services, session: Session, row: ValueSetRow) -> Expanded:
    """A stored ValueSet's expansion, worked out once per stored version of it and of the terminology held."""
    key = ("ValueSet", row.id, row.version_id, _terminology_stamp(session))
    resource = _json(row)
    assert resource is not None
    found = services.expansions.get(key, lambda: _expand_held(session, resource))
    assert isinstance(found, Expanded)
    return found


def _stored_value_set(session: Session, resource_id: str | None, url: str | None, version: str | None) -> ValueSetRow:
    if resource_id is not None:
        row = ResourceRepository(session, VALUE_SET).get_row(resource_id)
        if row is None or row.deleted:
            raise NotFound(f"ValueSet/{resource_id} is not known")
        assert isinstance(row, ValueSetRow)
        return row
    if not url:
        raise BadRequest("$expand needs a ValueSet: its id, a url parameter, or a valueSet parameter")
    found = store.find_by_canonical(session, ValueSetRow, url, version)
    if found is None:
        canonical = url + (f"|{version}" if version else "")
        raise NotFound(f"No ValueSet {canonical} is held here", code="not-found")
    return found


def _unexpandable(expanded: Expanded) -> None:
    name = expanded.value_set.get("url") or expanded.value_set.get("id") or "the ValueSet"
    if expanded.missing:
        raise Unprocessable(
            [
                Issue(
                    "error",
                    "not-found",
                    f"{name} cannot be expanded here: {missing} is not held on this server",
                    "ValueSet.compose",
                )
                for missing in expanded.missing
            ]
        )
    if expanded.unsupported:
        raise Unprocessable(
            Issue("error", "not-supported", f"{name} cannot be expanded here: {expanded.unsupported}", "ValueSet")
        )


@dataclass(frozen=True, slots=True)
class ExpandRequest:
    resource_id: str | None = None
    url: str | None = None
    value_set_version: str | None = None
    value_set: Mapping[str, Any] | None = None  # given in the request
    filter: str | None = None
    count: int | None = None
    offset: int = 0


def expand(services: Services, request: ExpandRequest) -> dict[str, Any]:
    """ValueSet/$expand: the ValueSet with an expansion (filtered, paged by offset and count)."""
    if request.count is not None and request.count < 0 or request.offset < 0:
        raise BadRequest("count and offset must not be negative", code="value")
    with services.db.read_session() as session:
        if request.value_set is not None:
            validate_structure(dict(request.value_set), "ValueSet")
            expanded = _expand_held(session, request.value_set)
        else:
            row = _stored_value_set(session, request.resource_id, request.url, request.value_set_version)
            expanded = _expanded_row(services, session, row)
    _unexpandable(expanded)
    matches = engine.matching(list(expanded.concepts), request.filter)
    count = min(request.count if request.count is not None else DEFAULT_COUNT, MAX_COUNT)
    page = matches[request.offset : request.offset + count]
    parameters: list[dict[str, Any]] = []
    if request.filter:
        parameters.append({"name": "filter", "valueString": request.filter})
    if request.count is not None:
        parameters.append({"name": "count", "valueInteger": count})
    if request.offset:
        parameters.append({"name": "offset", "valueInteger": request.offset})
    expansion: dict[str, Any] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": instant_text(utcnow()),
        "total": len(matches),
    }
    if request.offset or request.count is not None:
        expansion["offset"] = request.offset
    if parameters:
        expansion["parameter"] = parameters
    if page:
        expansion["contains"] = [concept.as_contains() for concept in page]
    result = {key: value for key, value in expanded.value_set.items() if key not in ("expansion", "text")}
    result["expansion"] = expansion
    return result


# $validate-code and $lookup ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeRequest:
    resource_id: str | None = None
    url: str | None = None
    value_set_version: str | None = None
    system: str | None = None
    code: str | None = None
    display: str | None = None
    version: str | None = None


def validate_code(services: Services, request: CodeRequest) -> dict[str, Any]:
    """ValueSet/$validate-code: whether the code is in the value set (result, message, display)."""
    if not request.code:
        raise BadRequest("$validate-code needs a code (code and system, a coding, or a codeableConcept)")
    with services.db.read_session() as session:
        row = _stored_value_set(session, request.resource_id, request.url, request.value_set_version)
        expanded = _expanded_row(services, session, row)
    _unexpandable(expanded)
    name = expanded.value_set.get("url") or f"ValueSet/{row.id}"
    found = [
        concept
        for concept in expanded.concepts
        if concept.code == request.code and (request.system is None or concept.system == request.system)
    ]
    parameters: list[dict[str, Any]] = []
    label = f"{request.system}#{request.code}" if request.system else request.code
    if not found:
        parameters += [
            {"name": "result", "valueBoolean": False},
            {"name": "message", "valueString": f"The code {label} is not in the value set {name}"},
        ]
    else:
        concept = found[0]
        displays = [concept.display, *(value for _, value in concept.designations)]
        if request.display and not any(d is not None and _same(d, request.display) for d in displays):
            parameters += [
                {"name": "result", "valueBoolean": False},
                {
                    "name": "message",
                    "valueString": f"The display {request.display!r} is not a display of {label} "
                    f"(expected {concept.display!r})",
                },
            ]
        else:
            parameters.append({"name": "result", "valueBoolean": True})
        if concept.display is not None:
            parameters.append({"name": "display", "valueString": concept.display})
    return {"resourceType": "Parameters", "parameter": parameters}


def _same(first: str, second: str) -> bool:
    return " ".join(first.split()).casefold() == " ".join(second.split()).casefold()


def lookup(services: Services, request: CodeRequest) -> dict[str, Any]:
    """CodeSystem/$lookup: a held code's display, designations, properties, parent and children."""
    if not request.code:
        raise BadRequest("$lookup needs a code (and a system, unless the CodeSystem is named by id)")
    with services.db.read_session() as session:
        if request.resource_id is not None:
            row = ResourceRepository(session, CODE_SYSTEM).get_row(request.resource_id)
            if row is None or row.deleted:
                raise NotFound(f"CodeSystem/{request.resource_id} is not known")
            assert isinstance(row, CodeSystemRow)
        else:
            if not request.system:
                raise BadRequest("$lookup needs the system of the code")
            found_row = store.code_system(session, request.system, request.version)
            if found_row is None:
                what = request.system + (f"|{request.version}" if request.version else "")
                raise NotFound(f"The CodeSystem {what} is not held on this server", code="not-found")
            row = found_row
        code_system = _json(row)
    assert code_system is not None
    found = engine.find_concept(code_system, request.code)
    if found is None:
        raise NotFound(f"The code {request.code!r} is not in the CodeSystem {code_system.get('url')}", code="not-found")
    concept, properties, ancestry = found
    parameters: list[dict[str, Any]] = [{"name": "name", "valueString": str(code_system.get("name") or row.id)}]
    if code_system.get("version"):
        parameters.append({"name": "version", "valueString": str(code_system["version"])})
    parameters.append({"name": "display", "valueString": concept.display or concept.code})
    if concept.abstract:
        parameters.append({"name": "abstract", "valueBoolean": True})
    for language, value in concept.designations:
        parts: list[dict[str, Any]] = [{"name": "value", "valueString": value}]
        if language:
            parts.insert(0, {"name": "language", "valueCode": language})
        parameters.append({"name": "designation", "part": parts})
    for name, value in properties.items():
        parameters.append(
            {"name": "property", "part": [{"name": "code", "valueCode": name}, {"name": "value", "valueString": value}]}
        )
    if ancestry:
        parameters.append(
            {
                "name": "property",
                "part": [{"name": "code", "valueCode": "parent"}, {"name": "value", "valueCode": ancestry[0]}],
            }
        )
    for child in engine.children(code_system, request.code):
        parameters.append(
            {
                "name": "property",
                "part": [{"name": "code", "valueCode": "child"}, {"name": "value", "valueCode": child}],
            }
        )
    return {"resourceType": "Parameters", "parameter": parameters}


# validation --------------------------------------------------------------------------------------------------


def value_set_resolver(services: Services) -> ValueSetResolver:
    """How response validation finds an answerValueSet the Questionnaire does not contain: the stored ValueSet the
    canonical (url, or url|version) names, with its expansion when it can be made here (so membership is decided);
    as stored when it cannot (the validator then reports what it could not check as a warning); None when unknown.

    One look-up per distinct value set of a validation (the validator asks once per canonical); the expansion is
    kept per stored version."""

    def resolve(canonical: str) -> Mapping[str, Any] | None:
        with services.db.read_session() as session:
            row = store.value_set(session, canonical)
            if row is None:
                return None
            key = ("listed", row.id, row.version_id, _terminology_stamp(session))
            expanded = _expanded_row(services, session, row)
        listed = services.expansions.get(key, expanded.listed)
        assert isinstance(listed, Mapping)
        return listed

    return resolve


# the shipped terminology -------------------------------------------------------------------------------------


def read_terminology(path: Path) -> dict[str, Any]:
    resource = jsonio.parse_body(path.read_bytes())
    resource_type = resource.get("resourceType")
    if resource_type not in KINDS:
        raise BadRequest(f"{path.name}: a ValueSet or a CodeSystem is expected, not {resource_type!r}")
    validate_structure(resource, str(resource_type))
    CHECKS[str(resource_type)](resource)
    return resource


def iso_3166() -> dict[str, Any]:
    """ISO 3166-1 country codes (alpha-2, alpha-3 and numeric) as a FHIR CodeSystem, from pycountry's copy of the
    standard (kept current with ISO's updates), so that no country code is typed here."""
    import pycountry

    concepts: list[dict[str, Any]] = []
    for country in sorted(pycountry.countries, key=lambda c: c.alpha_2):
        concepts.append({"code": country.alpha_2, "display": country.name})
    for country in sorted(pycountry.countries, key=lambda c: c.alpha_3):
        concepts.append({"code": country.alpha_3, "display": country.name})
    for country in sorted(pycountry.countries, key=lambda c: c.numeric):
        concepts.append({"code": country.numeric, "display": country.name})
    return _iso_code_system("iso3166", ISO_3166, "ISO3166", "ISO 3166-1 codes for the names of countries", concepts)


def iso_3166_2() -> dict[str, Any]:
    """ISO 3166-2 country subdivision codes (e.g. AU-NSW), from pycountry as ``iso_3166``."""
    import pycountry

    concepts = [{"code": sub.code, "display": sub.name} for sub in sorted(pycountry.subdivisions, key=lambda s: s.code)]
    return _iso_code_system(
        "iso3166-2", ISO_3166_2, "ISO3166Part2", "ISO 3166-2 codes for country subdivisions", concepts
    )


def _iso_code_system(
    resource_id: str, url: str, name: str, title: str, concepts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem",
        "id": resource_id,
        "url": url,
        "version": _pycountry_version(),
        "name": name,
        "title": title,
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "count": len(concepts),
        "concept": concepts,
    }


def _pycountry_version() -> str:
    from importlib.metadata import version

    return f"pycountry-{version('pycountry')}"


def answer_lists(questionnaires_dir: Path) -> list[dict[str, Any]]:
    """The answer lists of the built-in instruments as ValueSets: one per distinct list of answerOption codings of
    a Questionnaire, named after it (``<url>-answers``, then ``-answers-2`` ...), with its version."""
    found = []
    for path in definition_files(questionnaires_dir):
        questionnaire = jsonio.parse_body(path.read_bytes())
        url, name = questionnaire.get("url"), str(questionnaire.get("name") or path.parent.name)
        if not isinstance(url, str) or "/Questionnaire/" not in url:
            continue
        lists: list[list[dict[str, Any]]] = []
        for item in _items(questionnaire.get("item"), 0):
            codings = [o["valueCoding"] for o in item.get("answerOption") or () if "valueCoding" in o]
            if codings and codings not in lists:
                lists.append(codings)
        for number, codings in enumerate(lists, start=1):
            suffix = "answers" if number == 1 else f"answers-{number}"
            instrument = url.rsplit("/", 1)[1]
            includes: dict[str, list[dict[str, Any]]] = {}
            for coding in codings:
                concept = {"code": coding["code"], **({"display": coding["display"]} if "display" in coding else {})}
                includes.setdefault(coding.get("system", ""), []).append(concept)
            found.append(
                {
                    "resourceType": "ValueSet",
                    "id": f"{instrument}-{suffix}",
                    "url": url.replace("/Questionnaire/", "/ValueSet/") + f"-{suffix}",
                    "version": questionnaire.get("version"),
                    "name": f"{name.replace('-', '').replace(' ', '')}Answers{'' if number == 1 else number}",
                    "title": f"{questionnaire.get('title') or name}: answers" + ("" if number == 1 else f" ({number})"),
                    "status": "active",
                    "compose": {
                        "include": [{"system": system, "concept": concepts} for system, concepts in includes.items()]
                    },
                }
            )
    return found


def _items(items: object, depth: int) -> Iterator[Mapping[str, Any]]:
    for item in items if isinstance(items, list) and depth < 32 else ():
        if isinstance(item, Mapping):
            yield item
            yield from _items(item.get("item"), depth + 1)


def _comparable(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key not in ("meta", "id")}


def _store_one(services: Services, resource: dict[str, Any]) -> str:
    """Store a shipped definition that is new or changed (by canonical): 'created', 'updated' or 'unchanged'."""
    kind = KINDS[str(resource["resourceType"])]
    model = kind.model
    assert issubclass(model, TerminologyRow)
    with refusing_conflicts(kind), services.db.transaction() as session:
        url, version = str(resource["url"]), resource.get("version")
        existing = store.find_by_canonical(session, model, url, version)
        if existing is not None:
            current = current_resource(existing)
            if current is not None and _comparable(current) == _comparable(resource):
                return "unchanged"
            row = row_to_update(session, services, kind, existing.id, UNRESTRICTED, if_match=None)
            assert row is not None
            replace(session, services, kind, row, {**resource, "id": existing.id}, UNRESTRICTED)
            return "updated"
        wanted = str(resource.get("id") or "")
        taken: ResourceRow | None = ResourceRepository(session, kind).get_row(wanted) if wanted else None
        body = {key: value for key, value in resource.items() if key != "id"}
        insert(session, services, kind, body, UNRESTRICTED, resource_id=wanted if wanted and taken is None else None)
        return "created"


def load_terminology(services: Services, directory: Path, questionnaires_dir: Path | None = None) -> LoadReport:
    """Store the shipped CodeSystems and ValueSets (``terminology/*.json``), ISO 3166 (from pycountry) and the
    answer lists of the built-in instruments; loading again changes nothing."""
    report = LoadReport()
    shipped: list[tuple[str, dict[str, Any] | Path]] = [("iso3166", iso_3166()), ("iso3166-2", iso_3166_2())]
    shipped += [(path.stem, path) for path in sorted(directory.glob("*.json"))]
    if questionnaires_dir is not None:
        shipped += [(str(value_set["id"]), value_set) for value_set in answer_lists(questionnaires_dir)]
    for label, source in shipped:
        try:
            resource = read_terminology(source) if isinstance(source, Path) else source
            if not isinstance(source, Path):
                CHECKS[str(resource["resourceType"])](resource)
            outcome = _store_one(services, resource)
        except FhirError as exc:
            report.failed.append((label, str(exc)))
            continue
        {"created": report.created, "updated": report.updated, "unchanged": report.unchanged}[outcome].append(label)
    return report
