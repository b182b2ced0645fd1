"""Loading the built-in outcome Measures (``measures/<id>/measure.json``), as the questionnaire library is loaded:
each new or changed definition is stored, and loading the same folder twice changes nothing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from service.auth.access import UNRESTRICTED
from service.fhir import jsonio
from service.fhir.errors import FhirError, Unprocessable
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.outcomes.classify import MEASURE_BASE, MEASURES, measure_for
from service.questionnaires import LoadReport
from service.services import Services
from service.store import measures as store
from service.store.kinds import MEASURE
from service.store.repository import ResourceRepository
from service.writes import current_resource, insert, refusing_conflicts, replace, row_to_update


def measure_files(directory: Path) -> Iterator[Path]:
    """Every Measure definition in a library folder: ``<dir>/<measure>/measure.json``."""
    yield from sorted(directory.glob("*/measure.json"))


def check_measure(resource: Mapping[str, Any]) -> None:
    """What a built-in Measure must be: a versioned canonical this service knows how to evaluate."""
    for name in ("url", "version", "status", "title"):
        if not resource.get(name):
            raise Unprocessable(Issue("error", "required", f"Measure.{name} is missing", f"Measure.{name}"))
    url = str(resource["url"])
    if measure_for(url) is None:
        raise Unprocessable(
            Issue(
                "error",
                "not-supported",
                f"Measure.url {url!r} is not one of the outcome Measures this service evaluates "
                f"({', '.join(MEASURE_BASE + name for name in MEASURES)})",
                "Measure.url",
            )
        )


def read_measure(path: Path) -> dict[str, Any]:
    resource = jsonio.parse_body(path.read_bytes())
    validate_structure(resource, "Measure")
    check_measure(resource)
    return resource


def _comparable(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key not in ("meta", "id")}


def load_measures(services: Services, directory: Path) -> LoadReport:
    """Store each Measure definition that is new or changed (by canonical url and version)."""
    report = LoadReport()
    for path in measure_files(directory):
        label = str(path.parent.name)
        try:
            resource = read_measure(path)
            with refusing_conflicts(MEASURE), services.db.transaction() as session:
                existing = store.find_by_canonical(session, str(resource["url"]), str(resource["version"]))
                if existing is not None:
                    current = current_resource(existing)
                    if current is not None and _comparable(current) == _comparable(resource):
                        report.unchanged.append(label)
                        continue
                    row = row_to_update(session, services, MEASURE, existing.id, UNRESTRICTED, if_match=None)
                    assert row is not None
                    replace(session, services, MEASURE, row, {**resource, "id": existing.id}, UNRESTRICTED)
                    report.updated.append(label)
                    continue
                wanted = str(resource.get("id") or "")
                taken = not wanted or ResourceRepository(session, MEASURE).get_row(wanted) is not None
                insert(session, services, MEASURE, {k: v for k, v in resource.items() if k != "id"}, UNRESTRICTED,
                       resource_id=None if taken else wanted)  # fmt: skip
                report.created.append(label)
        except FhirError as exc:
            report.failed.append((label, str(exc)))
    return report
