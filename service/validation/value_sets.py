"""Answer value sets: resolved from the Questionnaire's contained resources or the caller, then listed.

Only what can be listed without a terminology server is used: ``expansion.contains``, or
``compose.include.concept`` (plus whole contained CodeSystems and included value sets). A value set
that cannot be listed entirely is reported as incomplete, so that a code missing from it is a
warning ("could not be checked"), not an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from service.validation.context import EXT_TRANSLATION, JSON, Context, objects, text_value

_MAX_NESTING = 8


@dataclass(frozen=True)
class Concept:
    system: str | None
    code: str
    display: str | None
    alternates: tuple[str, ...] = ()  # designations and translations that are also acceptable displays


@dataclass
class Expansion:
    concepts: list[Concept] = field(default_factory=list)
    complete: bool = True
    gaps: list[str] = field(default_factory=list)  # why it is not complete

    def matching(self, system: str | None, code: str) -> list[Concept]:
        """Concepts with this code, in this system; a Coding or concept without system matches by code,
        which is how forms that leave the system out of their answers are read."""
        return [
            concept
            for concept in self.concepts
            if concept.code == code and (system is None or concept.system is None or concept.system == system)
        ]

    def with_display(self, display: str) -> list[Concept]:
        return [concept for concept in self.concepts if display_matches(display, concept)]


def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def display_matches(display: str, concept: Concept) -> bool:
    wanted = normalise(display)
    candidates = ([concept.display] if concept.display else []) + list(concept.alternates)
    return any(normalise(candidate) == wanted for candidate in candidates)


def translations(element: JSON, name: str) -> tuple[str, ...]:
    """Texts of the translation extensions on a primitive (``_display`` beside ``display``)."""
    shadow = element.get("_" + name)
    if not isinstance(shadow, Mapping):
        return ()
    found: list[str] = []
    for _, ext in objects(shadow.get("extension")):
        if ext.get("url") != EXT_TRANSLATION:
            continue
        for _, part in objects(ext.get("extension")):
            content = text_value(part.get("valueString"))
            if part.get("url") == "content" and content is not None:
                found.append(content)
    return tuple(found)


def concept_of_coding(coding: JSON) -> Concept | None:
    code = text_value(coding.get("code"))
    if code is None:
        return None
    return Concept(
        text_value(coding.get("system")),
        code,
        text_value(coding.get("display")),
        translations(coding, "display"),
    )


class ValueSets:
    """Resolves and lists value sets once per validation run."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._cache: dict[str, Expansion | str] = {}

    def expansion(self, reference: str) -> Expansion | str:
        """The listed value set, or the reason it could not be found."""
        if reference not in self._cache:
            self._cache[reference] = self._load(reference, 0)
        return self._cache[reference]

    def _load(self, reference: str, depth: int) -> Expansion | str:
        found = self._find(reference)
        if isinstance(found, str):
            return found
        return self._expand(found, depth)

    def _local_resources(self) -> list[JSON]:
        local = [resource for _, resource in objects(self._context.questionnaire.get("contained"))]
        pointer = self._context.response.get("questionnaire")
        if isinstance(pointer, str) and pointer.startswith("#"):
            # The Questionnaire is itself contained in the response, so its siblings are in scope.
            local += [resource for _, resource in objects(self._context.response.get("contained"))]
        return local

    def _find(self, reference: str) -> JSON | str:
        local = self._local_resources()
        if reference.startswith("#"):
            for resource in local:
                if resource.get("resourceType") == "ValueSet" and resource.get("id") == reference[1:]:
                    return resource
            return f"no contained ValueSet has the id '{reference[1:]}'"
        url, _, version = reference.partition("|")
        for resource in local:
            if resource.get("resourceType") != "ValueSet" or resource.get("url") != url:
                continue
            if not version or resource.get("version") == version:
                return resource
        resolver = self._context.value_sets
        if resolver is None:
            return f"the value set {reference} is not contained in the Questionnaire and no resolver was given"
        resolved = resolver(reference)  # a failing look-up is the server's failure, not a verdict on the response
        if resolved is None:
            return f"the value set {reference} could not be found"
        if not isinstance(resolved, Mapping) or resolved.get("resourceType") != "ValueSet":
            return f"the lookup of {reference} did not return a ValueSet"
        return resolved

    def _expand(self, value_set: JSON, depth: int) -> Expansion:
        result = Expansion()
        expansion = value_set.get("expansion")
        if isinstance(expansion, Mapping) and isinstance(expansion.get("contains"), list):
            _walk_contains(expansion.get("contains"), result.concepts, 0)
            total = expansion.get("total")
            if isinstance(total, int) and total > len(result.concepts) or "offset" in expansion:
                result.complete = False
                result.gaps.append("its expansion is paged")
            return result
        compose = value_set.get("compose")
        if not isinstance(compose, Mapping):
            result.complete = False
            result.gaps.append("it has neither an expansion nor a compose")
            return result
        for _, include in objects(compose.get("include")):
            self._include(include, result, depth)
        excluded = Expansion()
        for _, exclude in objects(compose.get("exclude")):
            self._include(exclude, excluded, depth)
        if excluded.concepts:
            removed = {(c.system, c.code) for c in excluded.concepts}
            result.concepts = [c for c in result.concepts if (c.system, c.code) not in removed]
        if not excluded.complete:
            result.complete = False
            result.gaps.extend(excluded.gaps)
        return result

    def _include(self, include: JSON, result: Expansion, depth: int) -> None:
        system = text_value(include.get("system"))
        nested_sets = include.get("valueSet")
        for nested in nested_sets if isinstance(nested_sets, list) else []:
            if not isinstance(nested, str) or depth >= _MAX_NESTING:
                continue
            loaded = self._load(nested, depth + 1)
            if isinstance(loaded, str):
                result.complete = False
                result.gaps.append(loaded)
            else:
                result.concepts.extend(loaded.concepts)
                if not loaded.complete:
                    result.complete = False
                    result.gaps.extend(loaded.gaps)
        if isinstance(include.get("concept"), list):
            for _, concept in objects(include.get("concept")):
                code = text_value(concept.get("code"))
                if code is not None:
                    result.concepts.append(
                        Concept(system, code, text_value(concept.get("display")), _designations(concept))
                    )
        elif include.get("filter"):
            result.complete = False
            result.gaps.append(f"it selects codes of {system} by filter")
        elif system is not None:
            code_system = self._contained_code_system(system)
            if code_system is None:
                result.complete = False
                result.gaps.append(f"it includes all of {system}, which is not available here")
            else:
                _walk_concepts(code_system.get("concept"), system, result.concepts, 0)

    def _contained_code_system(self, url: str) -> JSON | None:
        for resource in self._local_resources():
            if resource.get("resourceType") != "CodeSystem" or resource.get("url") != url:
                continue
            if resource.get("content") in (None, "complete"):
                return resource
        return None


def _designations(concept: JSON) -> tuple[str, ...]:
    found = [
        value
        for _, designation in objects(concept.get("designation"))
        if (value := text_value(designation.get("value"))) is not None
    ]
    return tuple(found) + translations(concept, "display")


def _walk_contains(entries: object, into: list[Concept], depth: int) -> None:
    if depth > _MAX_NESTING:
        return
    for _, entry in objects(entries):
        code = text_value(entry.get("code"))
        if code is not None and entry.get("abstract") is not True:
            into.append(
                Concept(
                    text_value(entry.get("system")),
                    code,
                    text_value(entry.get("display")),
                    _designations(entry),
                )
            )
        _walk_contains(entry.get("contains"), into, depth + 1)


def _walk_concepts(entries: object, system: str, into: list[Concept], depth: int) -> None:
    if depth > _MAX_NESTING:
        return
    for _, entry in objects(entries):
        code = text_value(entry.get("code"))
        if code is not None:
            into.append(Concept(system, code, text_value(entry.get("display")), _designations(entry)))
        _walk_concepts(entry.get("concept"), system, into, depth + 1)


def describe_gaps(gaps: Iterable[str]) -> str:
    unique = list(dict.fromkeys(gaps))
    return "; ".join(unique[:3]) if unique else "it could not be listed"


def report_not_in(
    context: Context,
    expansion: Expansion,
    reference: str,
    absent: str,
    unconfirmed: str,
    path: str,
    link_id: str | None,
) -> None:
    """Report a value ``expansion`` does not list: the error ``absent`` when it lists the whole value set,
    else a warning that ``unconfirmed`` could not be confirmed in ``reference``, saying why."""
    if expansion.complete:
        context.add("error", "code-invalid", absent, path, link_id)
    else:
        gaps = describe_gaps(expansion.gaps)
        context.add(
            "warning", "not-supported", f"{unconfirmed} could not be confirmed in {reference}: {gaps}", path, link_id
        )
