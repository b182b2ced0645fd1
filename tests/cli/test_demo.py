"""`proms demo load` and `proms demo remove` on SQLite and PostgreSQL: idempotent loading, and removal of the demo
data with everything derived from it, leaving every other response as it was."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from service.auth.access import UNRESTRICTED
from service.cli import main
from service.config import PROJECT_ROOT, Settings
from service.demo import IDENTIFIER_SYSTEM, SYNTHETIC_TAG, demo_counts
from service.fhir.errors import Gone
from service.resources import read
from service.responses.submit import submit_response
from service.services import Services, build_services
from service.store.db import Database
from service.store.models import FlagRow, ObservationRow, ProvenanceRow, QuestionnaireResponseRow
from tests.conftest import truncate_pg

PHQ9 = json.loads((PROJECT_ROOT / "questionnaires" / "phq-9" / "questionnaire.json").read_text())
PHQ9_QUESTIONS = [item for item in PHQ9["item"] if item["type"] == "choice" and item["linkId"] != "/69722-7"]
SUMMARY = re.compile(
    r"demo data: (\d+) people, (\d+) responses \((\d+) new, (\d+) already stored\), (\d+) observations, (\d+) flags"
)


@pytest.fixture
def env(database_url: str) -> Iterator[dict[str, str]]:
    """A migrated database with the built-in questionnaires, as `make demo` prepares it."""
    variables = {"PROMS_DATABASE_URL": database_url, "PROMS_LOG_LEVEL": "WARNING"}
    loaded = CliRunner().invoke(main, ["questionnaires", "load"], env=variables)
    assert loaded.exit_code == 0, loaded.output
    yield variables
    if database_url.startswith("postgresql"):
        db = Database(database_url)
        truncate_pg(db.engine)
        db.dispose()


@pytest.fixture
def services(env: dict[str, str]) -> Iterator[Services]:
    built = build_services(Settings(database_url=env["PROMS_DATABASE_URL"], log_level="WARNING"))
    yield built
    built.close()


@pytest.fixture
def db(services: Services) -> Database:
    return services.db


def phq9_response(patient: str, weights: list[int], authored: str) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{PHQ9['url']}|{PHQ9['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": authored,
        "identifier": {"system": "urn:oid:2.16.840.1.113883.19.5.99", "value": f"{patient}-{authored}"},
        "item": [
            {"linkId": item["linkId"], "answer": [{"valueCoding": item["answerOption"][weight]["valueCoding"]}]}
            for item, weight in zip(PHQ9_QUESTIONS, weights, strict=True)
        ],
    }


def live(db: Database, model: Any, *conditions: Any) -> int:
    with db.read_session() as session:
        return session.scalar(select(func.count()).select_from(model).where(model.deleted.is_(False), *conditions)) or 0


def demo(*args: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(main, ["demo", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_load_twice_stores_once_and_remove_leaves_other_data_untouched(
    env: dict[str, str], services: Services, db: Database
) -> None:
    # Someone else's responses, one of them about the same Patient id as a demo person, stored before the demo.
    kept = [
        submit_response(services, phq9_response(patient, weights, authored), UNRESTRICTED).stored.id
        for patient, weights, authored in (
            ("p1", [1, 1, 1, 1, 0, 0, 0, 0, 1], "2026-01-10T10:00:00Z"),  # item 9: raises a Flag
            ("demo-01", [2, 2, 2, 2, 1, 1, 1, 1, 0], "2026-01-11T10:00:00Z"),
        )
    ]
    before = {model: live(db, model) for model in (ObservationRow, FlagRow, ProvenanceRow)}

    first = SUMMARY.search(demo("load", "--patients", "4", env=env))
    assert first is not None
    people, responses, created, existing, observations, flags = map(int, first.groups())
    assert (people, created, existing, flags) == (4, responses, 0, 1)  # demo-03's unreviewed safety flag
    counts = demo_counts(services)
    assert (counts.people, counts.responses, counts.observations, counts.flags) == (4, responses, observations, 1)
    assert counts.provenance == responses
    demo_ids = select(QuestionnaireResponseRow.id).where(
        QuestionnaireResponseRow.identifier_system == IDENTIFIER_SYSTEM
    )
    assert live(db, ObservationRow, ObservationRow.derived_from_id.in_(demo_ids)) == observations
    with db.read_session() as session:
        demo_id = session.scalars(demo_ids.limit(1)).one()
    stored = read(services, "QuestionnaireResponse", demo_id, UNRESTRICTED).resource()
    assert stored["meta"]["tag"] == [SYNTHETIC_TAG]

    again = SUMMARY.search(demo("load", "--patients", "4", env=env))
    assert again is not None and again.group(3, 4) == ("0", str(responses))
    assert live(db, QuestionnaireResponseRow) == responses + len(kept)  # no duplicates
    assert demo_counts(services) == counts

    removed = demo("remove", env=env)
    assert removed.strip() == (
        f"demo data removed: 4 people, {responses} responses, {observations} observations, 1 flags, "
        f"{responses} provenance"
    )
    assert demo_counts(services).responses == demo_counts(services).observations == demo_counts(services).flags == 0
    assert demo_counts(services).provenance == 0
    assert {model: live(db, model) for model in (ObservationRow, FlagRow, ProvenanceRow)} == before
    for response_id in kept:
        assert read(services, "QuestionnaireResponse", response_id, UNRESTRICTED).resource()["status"] == "completed"
        observations_of = live(db, ObservationRow, ObservationRow.derived_from_id == response_id)
        assert observations_of == 2  # the panel and the total, still standing
    assert live(db, QuestionnaireResponseRow) == len(kept)
    # Deleted as the FHIR API deletes: gone from reads and searches, the history kept.
    with pytest.raises(Gone):
        read(services, "QuestionnaireResponse", demo_id, UNRESTRICTED)
    assert "0 people, 0 responses" in demo("remove", env=env)

    reloaded = SUMMARY.search(demo("load", "--patients", "4", env=env))
    assert reloaded is not None and reloaded.group(2, 3) == (str(responses), str(responses))


def test_loading_needs_the_questionnaires(database_url: str) -> None:
    result = CliRunner().invoke(main, ["demo", "load"], env={"PROMS_DATABASE_URL": database_url})
    assert result.exit_code == 1
    assert "proms questionnaires load" in result.output
    if database_url.startswith("postgresql"):
        db = Database(database_url)
        truncate_pg(db.engine)
        db.dispose()


@pytest.mark.parametrize("count", ["0", "100"])
def test_the_number_of_people_is_between_1_and_99(count: str) -> None:
    result = CliRunner().invoke(main, ["demo", "load", "--patients", count])
    assert result.exit_code == 2
    assert "1<=x<=99" in result.output
