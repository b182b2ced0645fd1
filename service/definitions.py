"""Checks of Questionnaire definitions before they are loaded: what would make an instrument unusable."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from service.fhir import jsonio
from service.fhir.errors import FhirError
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.scoring import compile_questionnaire, questionnaire_expressions, score_response
from service.scoring.check import band_problems, declared_bound
from service.scoring.inputs import score_inputs
from service.scoring.interpret import bands_of

WEIGHT_URLS = (
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
)
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


def definition_files(directory: Path) -> Iterator[Path]:
    """Every instrument definition in a library folder: ``<dir>/<instrument>/questionnaire.json``."""
    yield from sorted(directory.glob("*/questionnaire.json"))


def _walk(items: list[Mapping[str, Any]], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, item in enumerate(items):
        here = f"{path}.item[{index}]"
        yield here, item
        yield from _walk(item.get("item", []), here)


# What a definition shipped in the library must also carry (a stored one may do without: an unversioned draft).
BUILT_IN_METADATA = ("version", "name", "title")


def check_definition(resource: Mapping[str, Any], *, built_in: bool = False) -> list[Issue]:
    """Every problem with one Questionnaire definition, the one check for ``proms questionnaires check`` and for a
    Questionnaire a client stores (POST, PUT): its structure first, the rest only if it parses. Errors would make
    it unusable (no canonical url, duplicate linkIds, unweighted options a score reads, expressions scoring cannot
    run, score bands that overlap or leave scores in no band, declared ranges the answers do not reach).

    ``built_in``: a definition of the library shipped with the service, which must also state its version, name,
    title and licence (errors); a client's definition without a name, title or licence gets warnings only.
    """
    try:
        validate_structure(resource, "Questionnaire")
    except FhirError as exc:
        return exc.issues
    issues: list[Issue] = []
    if not resource.get("url"):
        issues.append(
            Issue(
                "error",
                "required",
                "Questionnaire.url is missing: responses name their Questionnaire by its canonical url (and version)",
                "Questionnaire.url",
            )
        )
    for name in ("status", *(BUILT_IN_METADATA if built_in else ("name", "title"))):
        if not resource.get(name):
            text, where = f"Questionnaire.{name} is missing", f"Questionnaire.{name}"
            required = built_in or name == "status"
            issues.append(Issue("error" if required else "warning", "required", text, where))
    if not resource.get("copyright"):
        issues.append(
            Issue(
                "error" if built_in else "warning",
                "required",
                "Questionnaire.copyright is missing: state the instrument's licence",
                "Questionnaire.copyright",
            )
        )
    issues += _duplicate_link_ids(resource)
    issues += _missing_weights(resource)
    issues += compile_questionnaire(resource)
    ranges: list[Issue] = []
    if not any(issue.is_error for issue in issues):
        ranges = _declared_ranges(resource)
        issues += ranges + _declared_minimum_answers(resource)
    issues += _score_bands(resource, {issue.link_id for issue in ranges})
    return issues


def _score_bands(resource: Mapping[str, Any], wrong_range: set[str | None]) -> list[Issue]:
    """Score bands that overlap or leave scores in no band; against the declared minValue and maxValue only where
    those are right (a wrong one is reported by itself)."""
    issues = []
    for path, item in _walk(resource.get("item", []), "Questionnaire"):
        bands = bands_of(item)
        if not bands:
            continue
        link_id = str(item.get("linkId"))
        declared = link_id not in wrong_range
        low = declared_bound(item, MIN_VALUE) if declared else None
        high = declared_bound(item, MAX_VALUE) if declared else None
        issues += [
            Issue("error", "invalid", f"Item {link_id!r}: {problem}", path, link_id)
            for problem in band_problems(item, list(bands), low=low, high=high)
        ]
    return issues


def _duplicate_link_ids(resource: Mapping[str, Any]) -> list[Issue]:
    issues = []
    seen: dict[str, str] = {}
    for path, item in _walk(resource.get("item", []), "Questionnaire"):
        link_id = str(item.get("linkId"))
        if link_id in seen:
            issues.append(
                Issue("error", "invariant", f"Duplicate linkId {link_id!r} (also at {seen[link_id]})", path, link_id)
            )
        seen.setdefault(link_id, path)
    return issues


def _weight(option: Mapping[str, Any]) -> float | None:
    for holder in (option, option.get("valueCoding") or {}):
        for extension in holder.get("extension", []):
            if extension.get("url") in WEIGHT_URLS and isinstance(extension.get("valueDecimal"), int | float):
                return float(extension["valueDecimal"])
    return None


def _missing_weights(resource: Mapping[str, Any]) -> list[Issue]:
    """Options a score would read without a weight: some options weighted and others not, or a scored item
    whose options carry none."""
    expressions = " ".join(location.expression for location in questionnaire_expressions(resource))
    issues = []
    for path, item in _walk(resource.get("item", []), "Questionnaire"):
        options = item.get("answerOption", [])
        if item.get("type") not in ("choice", "open-choice") or not options:
            continue
        link_id = str(item.get("linkId"))
        unweighted = [
            str((option.get("valueCoding") or {}).get("code") or next(iter(option.values()), ""))
            for option in options
            if _weight(option) is None
        ]
        if unweighted and len(unweighted) < len(options):
            issues.append(
                Issue(
                    "error",
                    "required",
                    f"Item {link_id!r}: options {', '.join(unweighted)} have no itemWeight while the others do",
                    f"{path}.answerOption",
                    link_id,
                )
            )
        elif unweighted and f"'{link_id}'" in expressions:
            issues.append(
                Issue(
                    "error",
                    "required",
                    f"Item {link_id!r} is read by a score expression but none of its options has an itemWeight",
                    f"{path}.answerOption",
                    link_id,
                )
            )
    return issues


def _extreme_response(resource: Mapping[str, Any], pick: Callable[[list[float]], float]) -> dict[str, Any]:
    """A completed response answering every weighted choice item with its lowest (or highest) option."""

    def answer(items: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        answered = []
        for item in items:
            if item.get("type") == "group":
                children = answer(item.get("item", []))
                if children:
                    answered.append({"linkId": item["linkId"], "item": children})
                continue
            weighted = [(w, o) for o in item.get("answerOption", []) if (w := _weight(o)) is not None]
            if not weighted or item.get("readOnly"):
                continue
            target = pick([w for w, _ in weighted])
            option = next(o for w, o in weighted if w == target)
            value = {k: v for k, v in option.items() if k.startswith("value")}
            answered.append({"linkId": item["linkId"], "answer": [value]})
        return answered

    return {"resourceType": "QuestionnaireResponse", "status": "completed", "item": answer(resource.get("item", []))}


def _declared(item: Mapping[str, Any], url: str) -> float | None:
    for extension in item.get("extension", []):
        if extension.get("url") == url:
            value = extension.get("valueInteger", extension.get("valueDecimal"))
            return float(value) if isinstance(value, int | float) else None
    return None


def _declared_ranges(resource: Mapping[str, Any]) -> list[Issue]:
    """Each score's declared minValue/maxValue against what all-lowest and all-highest answers give."""
    lowest = {s.link_id: s.value for s in score_response(resource, _extreme_response(resource, min)).scores}
    highest = {s.link_id: s.value for s in score_response(resource, _extreme_response(resource, max)).scores}
    issues = []
    for path, item in _walk(resource.get("item", []), "Questionnaire"):
        link_id = str(item.get("linkId"))
        for url, values, word in ((MIN_VALUE, lowest, "lowest"), (MAX_VALUE, highest, "highest")):
            declared, reached = _declared(item, url), values.get(link_id)
            if declared is None or reached is None or float(reached) == declared:
                continue
            issues.append(
                Issue(
                    "error",
                    "value",
                    f"Score {link_id!r}: the {word} answers give {reached:g} but the item declares "
                    f"{url.rsplit('/', 1)[-1]} {declared:g}",
                    path,
                    link_id,
                )
            )
    return issues


def _declared_minimum_answers(resource: Mapping[str, Any]) -> list[Issue]:
    """Each score's ``score-minimum-answers`` against its expression: with that many of its items answered it is
    made, with one fewer it is not (the items answered first to last, each with its lowest weighted option)."""
    full = _extreme_response(resource, min)
    answers = {item["linkId"]: item for item in _flat(full["item"])}
    issues = []
    paths = {str(item.get("linkId")): path for path, item in _walk(resource.get("item", []), "Questionnaire")}
    for link_id, found in score_inputs(resource).items():
        if found.minimum is None:
            continue
        wanted = [answers[i] for i in found.items if i in answers]
        made = []
        for count in (found.minimum - 1, found.minimum):
            response = {**full, "item": wanted[: max(count, 0)]}
            scores = {s.link_id: s.value for s in score_response(resource, response).scores}
            made.append(scores.get(link_id) is not None)
        if made != [False, True]:
            issues.append(
                Issue(
                    "error",
                    "value",
                    f"Score {link_id!r} declares score-minimum-answers {found.minimum}, but its expression "
                    f"{'scores' if made[0] else 'does not score'} {found.minimum - 1} answered items and "
                    f"{'scores' if made[1] else 'does not score'} {found.minimum}",
                    paths.get(link_id),
                    link_id,
                )
            )
    return issues


def _flat(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        if "answer" in item:
            yield item
        yield from _flat(item.get("item", []))


def check_library(directory: Path) -> list[tuple[Path, Issue]]:
    problems: list[tuple[Path, Issue]] = []
    for path in definition_files(directory):
        try:
            resource = jsonio.parse_body(path.read_bytes())
        except FhirError as exc:
            problems.extend((path, issue) for issue in exc.issues)
            continue
        problems.extend((path, issue) for issue in check_definition(resource, built_in=True))
    return problems
