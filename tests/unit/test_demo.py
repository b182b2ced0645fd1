"""The demo generator (pure): the same seed gives the same people, every response is valid and scores, and the
personas have the properties the documentation promises, worked out here from the answers by hand."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from service.config import PROJECT_ROOT
from service.demo import (
    DEFAULT_PATIENTS,
    IDENTIFIER_SYSTEM,
    SYNTHETIC_TAG,
    DemoError,
    DemoPerson,
    generate_people,
)
from service.fhir.parse import validate_structure
from service.questionnaires import definition_files, read_definition
from service.responses.checks import check_response

LIBRARY = {
    str(q["id"]): q for q in (read_definition(path) for path in definition_files(PROJECT_ROOT / "questionnaires"))
}
TODAY = date(2026, 3, 3)
PHQ9_ITEMS = (
    "/44250-9",
    "/44255-8",
    "/44259-0",
    "/44254-1",
    "/44251-7",
    "/44258-2",
    "/44252-5",
    "/44253-3",
    "/44260-8",
)
PHQ9_SAFETY = "/44260-8"
CORE10_SAFETY = "core-10-6"
QPR15_ITEMS = tuple(f"qpr-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 19, 21, 22))
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"


@pytest.fixture(scope="module")
def people() -> list[DemoPerson]:
    return generate_people(LIBRARY, today=TODAY)


def slug_of(response: Mapping[str, Any]) -> str:
    return str(response["questionnaire"]).split("|")[0].rsplit("/", 1)[-1]


def series(person: DemoPerson, slug: str) -> list[dict[str, Any]]:
    return [response for response in person.responses if slug_of(response) == slug]


def answers(response: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each answered item's first answer by linkId (groups included)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("answer"):
                found[item["linkId"]] = item["answer"][0]
            walk(item.get("item", []))

    walk(response["item"])
    return found


def weights(response: Mapping[str, Any]) -> dict[str, float]:
    """The weight of each coded answer, looked up in the Questionnaire by the answer's code."""
    options: dict[tuple[str, str], float] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            for option in item.get("answerOption", []):
                for extension in option.get("extension", []):
                    if extension["url"] == ITEM_WEIGHT:
                        options[(item["linkId"], option["valueCoding"]["code"])] = extension["valueDecimal"]
            walk(item.get("item", []))

    walk(LIBRARY[slug_of(response)]["item"])
    return {
        link_id: options[(link_id, answer["valueCoding"]["code"])]
        for link_id, answer in answers(response).items()
        if (link_id, answer.get("valueCoding", {}).get("code")) in options
    }


def phq9_total(response: Mapping[str, Any]) -> int:
    """Items 1-9 summed; with one or two missing, the sum x 9 / answered, rounded half up (CMS MDS 3.0)."""
    given = [w for link_id, w in weights(response).items() if link_id in PHQ9_ITEMS]
    assert len(given) >= 7
    return int(sum(given) * 9 / len(given) + 0.5)


def qpr15_total(response: Mapping[str, Any]) -> float:
    given = weights(response)
    return sum(given[link_id] for link_id in QPR15_ITEMS)


def authored(response: Mapping[str, Any]) -> datetime:
    return datetime.strptime(response["authored"], "%Y-%m-%dT%H:%M:%SZ")


def days_before_today(response: Mapping[str, Any]) -> int:
    return (TODAY - authored(response).date()).days


def person(people: list[DemoPerson], patient_id: str) -> DemoPerson:
    return next(p for p in people if p.patient_id == patient_id)


# determinism -------------------------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_people(people: list[DemoPerson]) -> None:
    assert generate_people(LIBRARY, today=TODAY) == people
    other = generate_people(LIBRARY, today=TODAY, seed=7)
    assert [p.responses for p in other] != [p.responses for p in people]


def test_only_the_dates_follow_the_day_of_loading(people: list[DemoPerson]) -> None:
    later = generate_people(LIBRARY, today=TODAY + timedelta(days=40))
    for before, after in zip(people, later, strict=True):
        assert (before.patient_id, before.name, before.persona) == (after.patient_id, after.name, after.persona)
        for first, second in zip(before.responses, after.responses, strict=True):
            assert authored(second) - authored(first) == timedelta(days=40)
            assert {**first, "authored": None} == {**second, "authored": None}


def test_a_person_is_the_same_whatever_the_number_of_people(people: list[DemoPerson]) -> None:
    assert generate_people(LIBRARY, today=TODAY, patients=3) == people[:3]


@pytest.mark.parametrize("count", [0, 100])
def test_the_number_of_people_is_bounded(count: int) -> None:
    with pytest.raises(DemoError, match="1 to 99 people"):
        generate_people(LIBRARY, today=TODAY, patients=count)


def test_a_missing_instrument_is_named() -> None:
    without = {key: value for key, value in LIBRARY.items() if key != "qpr-15"}
    with pytest.raises(DemoError, match="qpr-15.*proms questionnaires load"):
        generate_people(without, today=TODAY)


# what every response is --------------------------------------------------------------------------------------


def test_every_response_is_valid_and_every_score_computes(people: list[DemoPerson]) -> None:
    for response in (r for p in people for r in p.responses):
        validate_structure(response, "QuestionnaireResponse")
        scoring = check_response(LIBRARY[slug_of(response)], response).scoring  # raises on any validation error
        missing = [score.link_id for score in scoring.scores if score.value is None]
        if slug_of(response) == "gbo":  # only the goals the person set have a score
            goals = {item["linkId"] for item in response["item"] if item["linkId"].startswith("gbo-goal-")}
            assert sorted(missing) == sorted({"gbo-goal-1-score", "gbo-goal-2-score", "gbo-goal-3-score"} - {
                f"{goal}-score" for goal in goals
            })  # fmt: skip
        else:
            assert missing == [], (response["identifier"], missing)
        if slug_of(response) == "phq-9":
            (total,) = (s.value for s in scoring.scores if s.link_id == "/44261-6")
            assert total == phq9_total(response)


def test_some_responses_miss_answers_the_scoring_rules_allow(people: list[DemoPerson]) -> None:
    phq9_short = [r for p in people for r in series(p, "phq-9") if len(set(weights(r)) & set(PHQ9_ITEMS)) < 9]
    assert phq9_short  # and they still score (above): at most two of the nine items are missing
    assert all(len(set(weights(r)) & set(PHQ9_ITEMS)) >= 7 for r in phq9_short)


def test_identity_tag_and_subject_follow_the_contract(people: list[DemoPerson]) -> None:
    assert [p.patient_id for p in people] == [f"demo-{n:02d}" for n in range(1, DEFAULT_PATIENTS + 1)]
    identifiers = set()
    for p in people:
        assert p.name and p.responses
        for response in p.responses:
            assert response["subject"] == {"reference": f"Patient/{p.patient_id}", "display": p.name}
            assert response["meta"]["tag"] == [SYNTHETIC_TAG]
            assert response["identifier"]["system"] == IDENTIFIER_SYSTEM
            identifiers.add(response["identifier"]["value"])
        moments = [authored(r) for r in p.responses]
        assert moments == sorted(moments)  # submitted oldest first
    assert len(identifiers) == sum(len(p.responses) for p in people)


def test_each_measure_is_repeated_every_4_to_12_weeks_over_a_year_or_more(people: list[DemoPerson]) -> None:
    for p in people:
        for slug in {slug_of(r) for r in p.responses}:
            days = [authored(r).date() for r in series(p, slug)]
            assert len(days) >= 3
            assert all(28 <= (b - a).days <= 84 for a, b in zip(days, days[1:], strict=False)), (p.patient_id, slug)
        span = (authored(p.responses[-1]) - authored(p.responses[0])).days
        assert 365 <= span <= 730, (p.patient_id, span)
        assert all(days_before_today(r) >= 1 for r in p.responses)  # nothing is dated in the future


# the personas, from the answers -------------------------------------------------------------------------------


def test_demo_01_reliably_improves_on_the_phq9_and_rises_on_the_qpr15(people: list[DemoPerson]) -> None:
    improving = person(people, "demo-01")
    *_, previous, latest = [phq9_total(r) for r in series(improving, "phq-9")]
    assert previous - latest >= 6  # the PHQ-9's reliable-change threshold
    qpr = [qpr15_total(r) for r in series(improving, "qpr-15")]
    assert qpr[-1] > qpr[-2] and qpr[-1] - qpr[0] >= 10


def test_demo_02_reliably_deteriorates_into_the_severe_band(people: list[DemoPerson]) -> None:
    *_, previous, latest = [phq9_total(r) for r in series(person(people, "demo-02"), "phq-9")]
    assert latest - previous >= 6
    assert latest >= 20  # severe: 20-27


def test_only_demo_03_answers_a_safety_item_and_only_at_the_latest_phq9(people: list[DemoPerson]) -> None:
    raised = [
        (p.patient_id, r["identifier"]["value"])
        for p in people
        for r in p.responses
        if weights(r).get(PHQ9_SAFETY, 0) > 0 or weights(r).get(CORE10_SAFETY, 0) > 0
    ]
    latest = series(person(people, "demo-03"), "phq-9")[-1]
    assert raised == [("demo-03", latest["identifier"]["value"])]
    assert weights(latest)[PHQ9_SAFETY] == 1  # "Several days"


def test_demo_04_is_overdue_and_the_first_three_are_not(people: list[DemoPerson]) -> None:
    def latest_days(p: DemoPerson) -> dict[str, int]:
        return {slug: days_before_today(series(p, slug)[-1]) for slug in {slug_of(r) for r in p.responses}}

    overdue = latest_days(person(people, "demo-04"))
    assert overdue["phq-9"] <= 27
    assert any(days > 84 for days in overdue.values())  # overdue even on a 12-week schedule
    for patient_id in ("demo-01", "demo-02", "demo-03"):
        assert max(latest_days(person(people, patient_id)).values()) <= 27  # not due even on a 4-week schedule


def test_the_other_people_vary(people: list[DemoPerson]) -> None:
    def phq9_change(p: DemoPerson) -> int:
        *_, previous, latest = [phq9_total(r) for r in series(p, "phq-9")]
        return latest - previous

    rest = people[4:]
    assert sum(phq9_change(p) >= 6 for p in rest) >= 1  # more people reliably deteriorate
    assert sum(phq9_change(p) <= -6 for p in rest) >= 1  # and more improve
    assert sum(days_before_today(p.responses[-1]) > 84 for p in rest) >= 1  # and more stopped coming
    assert len({slug_of(r) for p in people for r in p.responses}) == 7  # every instrument the demo uses
