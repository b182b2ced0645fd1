"""Checks of Questionnaire definitions before they are loaded: what would make an instrument unusable."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from service.fhir import jsonio
from service.fhir.errors import FhirError
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.questionnaires import definition_files


def _walk(items: list[Mapping[str, Any]], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, item in enumerate(items):
        here = f"{path}.item[{index}]"
        yield here, item
        yield from _walk(item.get("item", []), here)


def check_definition(resource: Mapping[str, Any]) -> list[Issue]:
    """Problems with one Questionnaire definition (structure first; the rest only if it parses)."""
    try:
        validate_structure(resource, "Questionnaire")
    except FhirError as exc:
        return exc.issues
    issues: list[Issue] = []
    for name in ("url", "version", "name", "title", "status"):
        if not resource.get(name):
            issues.append(Issue("error", "required", f"Questionnaire.{name} is missing", f"Questionnaire.{name}"))
    if not resource.get("copyright"):
        issues.append(
            Issue(
                "error",
                "required",
                "Questionnaire.copyright is missing: state the instrument's licence",
                "Questionnaire.copyright",
            )
        )
    seen: dict[str, str] = {}
    for path, item in _walk(resource.get("item", []), "Questionnaire"):
        link_id = str(item.get("linkId"))
        if link_id in seen:
            issues.append(
                Issue(
                    "error",
                    "invariant",
                    f"Duplicate linkId {link_id!r} (also at {seen[link_id]})",
                    path,
                    link_id,
                )
            )
        seen.setdefault(link_id, path)
    return issues


def check_library(directory: Path) -> list[tuple[Path, Issue]]:
    problems: list[tuple[Path, Issue]] = []
    for path in definition_files(directory):
        try:
            resource = jsonio.loads_object(path.read_bytes())
        except FhirError as exc:
            problems.extend((path, issue) for issue in exc.issues)
            continue
        problems.extend((path, issue) for issue in check_definition(resource))
    return problems
