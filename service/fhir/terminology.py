"""Expanding a ValueSet from the CodeSystems and ValueSets held (pure: the caller looks them up).

What is expanded: ``compose.include`` and ``exclude`` of whole code systems held with ``content`` complete, of
concept lists, of other value sets, and the filters ``concept is-a``, ``descendent-of``, ``is-not-a`` and
``property = value``. A code system that is not held (all of LOINC, SNOMED CT) cannot be listed: expanding a
value set that needs it raises ``NotHeld`` naming it, rather than answering with part of the value set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = Mapping[str, Any]
# (url, version or None) -> the CodeSystem resource held, or None.
FindCodeSystem = Callable[[str, str | None], JSON | None]
# canonical (url or url|version) -> the ValueSet resource held, or None.
FindValueSet = Callable[[str], JSON | None]

MAX_NESTING = 8
FILTER_OPERATORS = ("is-a", "descendent-of", "is-not-a", "=")


@dataclass(frozen=True, slots=True)
class Concept:
    system: str
    code: str
    display: str | None = None
    version: str | None = None
    abstract: bool = False
    designations: tuple[tuple[str | None, str], ...] = ()  # (language, value)

    def as_contains(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"system": self.system}
        if self.version:
            entry["version"] = self.version
        if self.abstract:
            entry["abstract"] = True
        entry["code"] = self.code
        if self.display is not None:
            entry["display"] = self.display
        if self.designations:
            entry["designation"] = [
                {**({"language": language} if language else {}), "value": value}
                for language, value in self.designations
            ]
        return entry


class NotHeld(Exception):
    """The value set needs something this server does not hold (a code system, a value set)."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__("; ".join(missing))


class Unsupported(Exception):
    """The value set uses a part of compose this server does not expand (a filter it does not know)."""


@dataclass
class _Run:
    find_code_system: FindCodeSystem
    find_value_set: FindValueSet
    missing: list[str] = field(default_factory=list)


def expand(value_set: JSON, find_code_system: FindCodeSystem, find_value_set: FindValueSet) -> list[Concept]:
    """Every concept of the value set, in the order compose lists them, each (system, code) once.

    Raises NotHeld (listing everything missing) or Unsupported."""
    run = _Run(find_code_system, find_value_set)
    concepts = _expand(run, value_set, 0)
    if run.missing:
        raise NotHeld(list(dict.fromkeys(run.missing)))
    return concepts


def _expand(run: _Run, value_set: JSON, depth: int) -> list[Concept]:
    compose = value_set.get("compose")
    if not isinstance(compose, Mapping):
        expansion = value_set.get("expansion")
        if isinstance(expansion, Mapping) and isinstance(expansion.get("contains"), list):
            return list(_unique(_contains(expansion["contains"], 0)))
        run.missing.append(f"ValueSet {value_set.get('url') or value_set.get('id')} has neither compose nor expansion")
        return []
    included: list[Concept] = []
    for include in _objects(compose.get("include")):
        included.extend(_include(run, include, depth))
    excluded: set[tuple[str, str]] = set()
    for exclude in _objects(compose.get("exclude")):
        excluded.update((c.system, c.code) for c in _include(run, exclude, depth))
    return [c for c in _unique(included) if (c.system, c.code) not in excluded]


def _include(run: _Run, include: JSON, depth: int) -> list[Concept]:
    """The concepts one include (or exclude) selects: the intersection of its system part and its value sets."""
    system = include.get("system") if isinstance(include.get("system"), str) else None
    version = include.get("version") if isinstance(include.get("version"), str) else None
    selected: list[Concept] | None = None
    if system is not None:
        selected = _from_system(run, system, version, include)
    nested = [canonical for canonical in include.get("valueSet") or () if isinstance(canonical, str)]
    for canonical in nested:
        if depth >= MAX_NESTING:
            raise Unsupported(f"value sets nested more than {MAX_NESTING} deep")
        found = run.find_value_set(canonical)
        if found is None:
            run.missing.append(f"ValueSet {canonical}")
            continue
        members = _expand(run, found, depth + 1)
        if selected is None:
            selected = members
        else:
            keys = {(c.system, c.code) for c in members}
            selected = [c for c in selected if (c.system, c.code) in keys]
    return selected or []


def _from_system(run: _Run, system: str, version: str | None, include: JSON) -> list[Concept]:
    listed = list(_objects(include.get("concept")))
    filters = list(_objects(include.get("filter")))
    code_system = run.find_code_system(system, version)
    if listed:
        held = _index(code_system, system) if _complete(code_system) else {}
        found = []
        for concept in listed:
            code = concept.get("code")
            if not isinstance(code, str):
                continue
            known = held.get(code)
            display = concept.get("display") if isinstance(concept.get("display"), str) else None
            found.append(
                Concept(
                    system,
                    code,
                    display if display is not None else (known.display if known else None),
                    version,
                    designations=_designations(concept),
                )
            )
        return found
    if not _complete(code_system):
        what = f"CodeSystem {system}" + (f"|{version}" if version else "")
        if code_system is not None:
            what += f" (held with content '{code_system.get('content')}', not its concepts)"
        run.missing.append(what)
        return []
    assert code_system is not None
    concepts = list(_walk(code_system.get("concept"), system, _version_of(code_system, version), None, 0))
    for selector in filters:
        concepts = _filtered(concepts, code_system, selector)
    return [c for c, _ in concepts]


def _complete(code_system: JSON | None) -> bool:
    return code_system is not None and code_system.get("content", "complete") == "complete"


def _version_of(code_system: JSON, version: str | None) -> str | None:
    found = code_system.get("version")
    return version or (found if isinstance(found, str) else None)


# A concept of a code system as walked: the concept and the codes of its ancestors (nearest first).
Walked = tuple[Concept, tuple[str, ...]]


def _walk(
    entries: object, system: str, version: str | None, parents: tuple[str, ...] | None, depth: int
) -> Iterator[Walked]:
    if depth > MAX_NESTING * 4:
        return
    for entry in _objects(entries):
        code = entry.get("code")
        if not isinstance(code, str):
            continue
        abstract = any(
            p.get("code") in ("notSelectable", "abstract") and p.get("valueBoolean") is True
            for p in _objects(entry.get("property"))
        )
        concept = Concept(
            system,
            code,
            entry.get("display") if isinstance(entry.get("display"), str) else None,
            version,
            abstract,
            _designations(entry),
        )
        ancestry = parents or ()
        yield concept, ancestry
        yield from _walk(entry.get("concept"), system, version, (code, *ancestry), depth + 1)


def _index(code_system: JSON | None, system: str) -> dict[str, Concept]:
    if code_system is None:
        return {}
    return {concept.code: concept for concept, _ in _walk(code_system.get("concept"), system, None, None, 0)}


def _properties(code_system: JSON, code: str) -> dict[str, str]:
    for entry in _all_entries(code_system.get("concept"), 0):
        if entry.get("code") == code:
            found: dict[str, str] = {}
            for prop in _objects(entry.get("property")):
                value = next((v for k, v in prop.items() if k.startswith("value")), None)
                if isinstance(prop.get("code"), str) and value is not None:
                    found[prop["code"]] = str(value).lower() if isinstance(value, bool) else str(value)
            return found
    return {}


def _all_entries(entries: object, depth: int) -> Iterator[JSON]:
    if depth > MAX_NESTING * 4:
        return
    for entry in _objects(entries):
        yield entry
        yield from _all_entries(entry.get("concept"), depth + 1)


def _filtered(concepts: list[Walked], code_system: JSON, selector: JSON) -> list[Walked]:
    prop, op, value = selector.get("property"), selector.get("op"), selector.get("value")
    if op not in FILTER_OPERATORS or not isinstance(prop, str) or not isinstance(value, str):
        raise Unsupported(f"the filter {prop} {op} {value} (supported: concept is-a, descendent-of, is-not-a; =)")
    if op == "=":
        if prop in ("code", "concept"):
            return [(c, a) for c, a in concepts if c.code == value]
        if prop == "display":
            return [(c, a) for c, a in concepts if c.display == value]
        return [(c, a) for c, a in concepts if _properties(code_system, c.code).get(prop) == value.lower()]
    if prop not in ("concept", "code"):
        raise Unsupported(f"the filter {prop} {op} {value}: hierarchy filters apply to the property 'concept'")
    if op == "is-a":
        return [(c, a) for c, a in concepts if c.code == value or value in a]
    if op == "descendent-of":
        return [(c, a) for c, a in concepts if value in a]
    return [(c, a) for c, a in concepts if c.code != value and value not in a]  # is-not-a


def _contains(entries: object, depth: int) -> Iterator[Concept]:
    if depth > MAX_NESTING:
        return
    for entry in _objects(entries):
        code, system = entry.get("code"), entry.get("system")
        if isinstance(code, str) and isinstance(system, str):
            display = entry.get("display") if isinstance(entry.get("display"), str) else None
            version = entry.get("version") if isinstance(entry.get("version"), str) else None
            yield Concept(system, code, display, version, entry.get("abstract") is True, _designations(entry))
        yield from _contains(entry.get("contains"), depth + 1)


def _designations(entry: JSON) -> tuple[tuple[str | None, str], ...]:
    found = []
    for designation in _objects(entry.get("designation")):
        value, language = designation.get("value"), designation.get("language")
        if isinstance(value, str):
            found.append((language if isinstance(language, str) else None, value))
    return tuple(found)


def _unique(concepts: Iterator[Concept] | list[Concept]) -> Iterator[Concept]:
    seen: set[tuple[str, str]] = set()
    for concept in concepts:
        key = (concept.system, concept.code)
        if key not in seen:
            seen.add(key)
            yield concept


def _objects(value: object) -> Iterator[JSON]:
    for entry in value if isinstance(value, list) else ():
        if isinstance(entry, Mapping):
            yield entry


def matching(concepts: list[Concept], text: str | None) -> list[Concept]:
    """Type-ahead: the concepts whose display or code contains ``text`` (case-insensitive); all when no text."""
    if not text:
        return concepts
    wanted = text.casefold()
    return [
        c for c in concepts if wanted in c.code.casefold() or (c.display is not None and wanted in c.display.casefold())
    ]


def find_concept(code_system: JSON, code: str) -> tuple[Concept, dict[str, str], tuple[str, ...]] | None:
    """A concept of a CodeSystem by code: the concept, its properties and its ancestors (nearest first)."""
    system = str(code_system.get("url") or "")
    version = code_system.get("version") if isinstance(code_system.get("version"), str) else None
    for concept, ancestry in _walk(code_system.get("concept"), system, version, None, 0):
        if concept.code == code:
            return concept, _properties(code_system, code), ancestry
    return None


def children(code_system: JSON, code: str) -> list[str]:
    for entry in _all_entries(code_system.get("concept"), 0):
        if entry.get("code") == code:
            return [
                str(child["code"]) for child in _objects(entry.get("concept")) if isinstance(child.get("code"), str)
            ]
    return []
