"""Outcome Measures over HTTP: Measure/$evaluate-measure on a hand-built population, who may run it, what it stores.

The population (PHQ-9 totals, period 1 January to 30 June 2026; the PHQ-9's facts from its Questionnaire: reliable
change 6, lower is better, clinical cut-off 10, a total of 10 or more being the clinical range):

    person  scores in the period (dated)       change  reliable?          first clinical?  recovered?
    a       15 (10 Jan) -> 5 (10 Apr)          -10     improved           yes (15)         yes: 5 < 10
    b       12 -> 8                            -4      no                 yes (12)         no
    c       8 -> 16                            +8      deteriorated       no (8)           -
    d       20 -> 13                           -7      improved           yes (20)         no: 13 >= 10
    e       14 -> 14 -> 9                      -5      no (first to last) yes (14)         no
    f       18                                 -       not paired         -                -

    paired outcomes                    a b c d e of a..f        5 of 6
    reliable improvement               a d of a b c d e         2 of 5
    reliable deterioration             c of a b c d e           1 of 5
    clinically significant improvement a of a b d e             1 of 4   (f's 18 is clinical, but f is not paired)

What must not count: a's 24 on 15 Dec 2025 and 3 on 5 Jul 2026 (outside the period: counted, a's first would be 24 and
last 3), b's 24 on 1 May (deleted: counted, b would deteriorate), and g, who is not in the Group (20 -> 2: counted in
the Group's report, improvement would be 3 of 6). Whole-service reports count g: 6 of 7, 3 of 6, 1 of 6, 2 of 5.
"""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.measurereport import MeasureReport
from flask import Flask

from service.config import PROJECT_ROOT
from service.outcomes.library import load_measures
from tests.conftest import Fhir, Keys
from tests.unit.app_ui.builders import answered, choice_ids, questionnaire
from tests.unit.app_ui.conftest import phq9_weights

PERIOD = "periodStart=2026-01-01&periodEnd=2026-06-30"
GROUP = "team-a"
PHQ9_TOTAL = ("http://loinc.org", "44261-6")
PHQ9_SCORES = {
    "a": [("2025-12-15", 24), ("2026-01-10", 15), ("2026-04-10", 5), ("2026-07-05", 3)],
    "b": [("2026-01-12", 12), ("2026-03-12", 8)],
    "c": [("2026-01-14", 8), ("2026-03-14", 16)],
    "d": [("2026-02-01", 20), ("2026-05-01", 13)],
    "e": [("2026-01-20", 14), ("2026-03-20", 14), ("2026-06-20", 9)],
    "f": [("2026-02-02", 18)],
    "g": [("2026-01-05", 20), ("2026-04-05", 2)],
}
POPULATIONS = ("initial-population", "denominator", "numerator")


def submit(fhir: Fhir, slug: str, subject: str, day: str, weights: dict[str, float]) -> str:
    response = answered(questionnaire(slug), weights, authored=f"{day}T10:00:00Z", response_id="x", subject=subject)
    del response["id"]
    return str(fhir.create(response)["id"])


@pytest.fixture
def population(app: Flask, fhir: Fhir) -> dict[str, Any]:
    return build_population(app, fhir)


def build_population(app: Flask, fhir: Fhir) -> dict[str, Any]:
    """The population of this module's docstring, the built-in Measures loaded; the Group's resource."""
    for slug in ("phq-9", "qpr-15"):
        assert fhir.put(f"Questionnaire/{slug}", questionnaire(slug)).status_code == 201
    loaded = load_measures(app.web.services, PROJECT_ROOT / "measures")
    assert len(loaded.created) == 4 and not loaded.failed
    for person, scores in PHQ9_SCORES.items():
        for day, total in scores:
            submit(fhir, "phq-9", person, day, phq9_weights(total))
    deleted = submit(fhir, "phq-9", "b", "2026-05-01", phq9_weights(24))
    assert fhir.delete(f"QuestionnaireResponse/{deleted}").status_code == 200
    qpr = dict.fromkeys(choice_ids(questionnaire("qpr-15")), 2.0)
    submit(fhir, "qpr-15", "a", "2026-02-01", qpr)
    submit(fhir, "qpr-15", "a", "2026-05-01", {**qpr, "qpr-1": 4.0})
    members = [{"entity": {"reference": f"Patient/{person}"}} for person in "abcdef"]
    group = {"resourceType": "Group", "id": GROUP, "type": "person", "actual": True, "member": members}
    assert fhir.put(f"Group/{GROUP}", group).status_code == 201
    return group


def evaluate(fhir: Fhir, measure: str, query: str = "", status: int = 200) -> dict[str, Any]:
    response = fhir.get(f"Measure/{measure}/$evaluate-measure?{PERIOD}{query}")
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def stratum(report: dict[str, Any], system: str, code: str) -> dict[str, Any]:
    (stratifier,) = report["group"][0]["stratifier"]
    found = [s for s in stratifier["stratum"] if {"system": system, "code": code} in
             [{k: c.get(k) for k in ("system", "code")} for c in s["value"]["coding"]]]  # fmt: skip
    assert len(found) == 1
    return found[0]


def counts(found: dict[str, Any]) -> tuple[int, ...]:
    by_code = {p["code"]["coding"][0]["code"]: p["count"] for p in found["population"]}
    return tuple(by_code[code] for code in POPULATIONS)


EXPECTED_GROUP = {
    "paired-outcomes": (6, 6, 5),
    "reliable-improvement": (6, 5, 2),
    "reliable-deterioration": (6, 5, 1),
    "clinically-significant-improvement": (6, 4, 1),
}


@pytest.mark.parametrize("measure", list(EXPECTED_GROUP))
def test_the_group_report_gives_the_counts_worked_out_by_hand(
    fhir: Fhir, population: dict[str, Any], measure: str
) -> None:
    report = evaluate(fhir, measure, f"&subject=Group/{GROUP}")
    MeasureReport.model_validate(report)  # a valid R4 MeasureReport
    assert report["type"] == "summary" and report["status"] == "complete"
    assert report["measure"] == f"https://recovery-proms.org/fhir/Measure/{measure}|1.0.0"
    assert report["subject"] == {"reference": f"Group/{GROUP}"}
    assert report["period"] == {"start": "2026-01-01", "end": "2026-06-30"}
    phq9 = stratum(report, *PHQ9_TOTAL)
    initial, denominator, numerator = EXPECTED_GROUP[measure]
    assert counts(phq9) == (initial, denominator, numerator)
    assert phq9["measureScore"] == {"value": round(numerator / denominator, 4)}
    assert phq9["value"]["text"] == "PHQ-9 total score (0–27)"
    assert {"system": "http://snomed.info/sct", "code": "720433000"} in [
        {k: c[k] for k in ("system", "code")} for c in phq9["value"]["coding"]
    ]


def test_without_a_subject_everyone_the_caller_may_read_is_counted(fhir: Fhir, population: dict[str, Any]) -> None:
    expected = {"paired-outcomes": (7, 7, 6), "reliable-improvement": (7, 6, 3),
                "reliable-deterioration": (7, 6, 1), "clinically-significant-improvement": (7, 5, 2)}  # fmt: skip
    for measure, wanted in expected.items():
        report = evaluate(fhir, measure)
        assert "subject" not in report
        assert counts(stratum(report, *PHQ9_TOTAL)) == wanted, measure


def test_a_subject_list_names_the_people_in_each_population(fhir: Fhir, population: dict[str, Any]) -> None:
    report = evaluate(fhir, "reliable-improvement", f"&subject=Group/{GROUP}&reportType=subject-list")
    MeasureReport.model_validate(report)
    assert report["type"] == "subject-list"
    contained = {resource["id"]: resource for resource in report["contained"]}
    lists = {}
    for population_entry in stratum(report, *PHQ9_TOTAL)["population"]:
        reference = population_entry["subjectResults"]["reference"]
        found = contained[reference.removeprefix("#")]
        assert found["resourceType"] == "List" and found["mode"] == "snapshot"
        members = [entry["item"]["reference"] for entry in found.get("entry", [])]
        assert len(members) == population_entry["count"]
        lists[population_entry["code"]["coding"][0]["code"]] = members
    assert lists == {
        "initial-population": [f"Patient/{p}" for p in "abcdef"],
        "denominator": [f"Patient/{p}" for p in "abcde"],
        "numerator": ["Patient/a", "Patient/d"],
    }


def test_an_individual_report_counts_one_patient(fhir: Fhir, population: dict[str, Any]) -> None:
    report = evaluate(fhir, "clinically-significant-improvement", "&subject=Patient/d")
    assert report["type"] == "individual" and report["subject"] == {"reference": "Patient/d"}
    assert counts(stratum(report, *PHQ9_TOTAL)) == (1, 1, 0)  # 20 -> 13: reliably better, still clinical
    recovered = evaluate(fhir, "clinically-significant-improvement", "&subject=Patient/a&reportType=subject")
    assert counts(stratum(recovered, *PHQ9_TOTAL)) == (1, 1, 1)


def test_a_score_without_the_facts_a_measure_needs_is_reported_as_not_counted(
    fhir: Fhir, population: dict[str, Any]
) -> None:
    report = evaluate(fhir, "reliable-improvement", f"&subject=Group/{GROUP}")
    qpr = stratum(report, "https://recovery-proms.org/fhir/CodeSystem/qpr", "qpr-15-total")
    assert "population" not in qpr  # the QPR-15 has no reliable-change threshold: nothing is guessed
    assert qpr["measureScore"] == {
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "not-applicable"}
        ]
    }
    assert report["extension"] == [
        {"url": "http://hl7.org/fhir/StructureDefinition/cqf-messages", "valueReference": {"reference": "#messages"}}
    ]
    (messages,) = [r for r in report["contained"] if r["resourceType"] == "OperationOutcome"]
    index = report["group"][0]["stratifier"][0]["stratum"].index(qpr)
    (said,) = [
        i for i in messages["issue"] if i["expression"] == [f"MeasureReport.group[0].stratifier[0].stratum[{index}]"]
    ]
    assert said["code"] == "not-supported"
    assert "QPR-15 total score" in said["details"]["text"] and "no reliable-change threshold" in said["details"]["text"]
    phq9_note = next(i for i in messages["issue"] if i["details"]["text"].startswith("PHQ-9 total score"))
    assert "reliable change 6, lower is better, clinical cut-off 10" in phq9_note["details"]["text"]
    # Paired outcomes need no threshold: the same QPR-15 scores are counted there (a's two responses).
    paired = evaluate(fhir, "paired-outcomes", f"&subject=Group/{GROUP}")
    assert counts(stratum(paired, "https://recovery-proms.org/fhir/CodeSystem/qpr", "qpr-15-total")) == (1, 1, 1)


def test_each_report_is_stored_audited_and_found_again(fhir: Fhir, population: dict[str, Any]) -> None:
    response = fhir.get(f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}&subject=Group/{GROUP}")
    report = response.get_json()
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Content-Location"].endswith(f"/MeasureReport/{report['id']}/_history/1")
    assert fhir.get(f"MeasureReport/{report['id']}").get_json() == report
    for query in (
        "measure=https://recovery-proms.org/fhir/Measure/reliable-improvement",
        f"subject=Group/{GROUP}",
        "period=2026",  # the report's period lies within 2026
        "status=complete",
    ):
        found = fhir.get(f"MeasureReport?{query}").get_json()
        assert [entry["resource"]["id"] for entry in found["entry"]] == [report["id"]], query
    assert fhir.get("MeasureReport?period=2025").get_json()["total"] == 0
    assert fhir.get("MeasureReport?subject=Patient/a").get_json()["total"] == 0

    events = fhir.get("AuditEvent?type=operation-evaluate-measure").get_json()
    (event,) = [e["resource"] for e in events["entry"]]
    assert event["outcome"] == "0"
    entities = {entity["what"]["reference"] for entity in event["entity"] if "what" in entity}
    assert {"Measure/reliable-improvement", f"Group/{GROUP}", f"MeasureReport/{report['id']}"} <= entities
    patients = sorted(e.removeprefix("Patient/") for e in entities if e.startswith("Patient/"))
    assert patients == list("abcdef")  # everyone counted, and nobody else (not g)


def test_the_built_in_measures_are_served_read_only(fhir: Fhir, population: dict[str, Any], app: Flask) -> None:
    listed = fhir.get("Measure?status=active").get_json()
    assert sorted(e["resource"]["id"] for e in listed["entry"]) == sorted(EXPECTED_GROUP)
    one = fhir.get("Measure?url=https://recovery-proms.org/fhir/Measure/paired-outcomes").get_json()
    assert one["total"] == 1 and one["entry"][0]["resource"]["scoring"]["coding"][0]["code"] == "proportion"
    refused = fhir.post("Measure", one["entry"][0]["resource"])
    assert refused.status_code == 405 and "proms init" in refused.get_data(as_text=True)
    assert fhir.post("MeasureReport", {"resourceType": "MeasureReport"}).status_code == 405
    again = load_measures(app.web.services, PROJECT_ROOT / "measures")
    assert len(again.unchanged) == 4 and not again.created and not again.updated


def test_type_level_with_the_measure_parameter_and_a_posted_parameters_body(
    fhir: Fhir, population: dict[str, Any]
) -> None:
    url = "https://recovery-proms.org/fhir/Measure/reliable-deterioration"
    by_url = fhir.get(f"Measure/$evaluate-measure?{PERIOD}&subject=Group/{GROUP}&measure={url}|1.0.0")
    assert by_url.status_code == 200, by_url.get_data(as_text=True)
    assert counts(stratum(by_url.get_json(), *PHQ9_TOTAL)) == (6, 5, 1)
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "periodStart", "valueDate": "2026-01-01"},
            {"name": "periodEnd", "valueDate": "2026-06-30"},
            {"name": "subject", "valueString": f"Group/{GROUP}"},
            {"name": "reportType", "valueCode": "population"},
        ],
    }
    posted = fhir.post("Measure/reliable-deterioration/$evaluate-measure", parameters)
    assert posted.status_code == 200, posted.get_data(as_text=True)
    assert counts(stratum(posted.get_json(), *PHQ9_TOTAL)) == (6, 5, 1)


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("Measure/reliable-improvement/$evaluate-measure?periodEnd=2026-06-30", 400, "periodStart is required"),
        ("Measure/reliable-improvement/$evaluate-measure?periodStart=2026-07-01&periodEnd=2026-06-30", 400, "after"),
        ("Measure/reliable-improvement/$evaluate-measure?periodStart=July&periodEnd=2026-06-30", 400, "periodStart"),
        (f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}&reportType=everyone", 400, "reportType"),
        (f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}&reportType=subject&subject=Group/{GROUP}", 400,
         "Patient"),
        (f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}&subject=Practitioner/x", 400, "subject"),
        (f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}&subjekt=Group/{GROUP}", 400, "Unknown parameter"),
        (f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}&practitioner=Practitioner/x", 400, "not supported"),
        (f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}&periodStart=2026-02-01", 400, "more than once"),
        (f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}&subject=Group/nobody", 404, "Group/nobody"),
        (f"Measure/unknown/$evaluate-measure?{PERIOD}", 404, "Measure/unknown"),
        (f"Measure/$evaluate-measure?{PERIOD}", 400, "measure is required"),
        (f"Measure/$evaluate-measure?{PERIOD}&measure=https://example.org/Measure/x", 404, "not known"),
    ],
)  # fmt: skip
def test_a_bad_request_is_refused_with_an_operation_outcome_and_stores_nothing(
    fhir: Fhir, population: dict[str, Any], query: str, status: int, words: str
) -> None:
    response = fhir.get(query)
    assert response.status_code == status, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["details"]["text"]
    assert fhir.get("MeasureReport?_summary=count").get_json()["total"] == 0


def test_a_measure_this_service_cannot_evaluate_is_a_422(fhir: Fhir, population: dict[str, Any], app: Flask) -> None:
    from service.auth.access import UNRESTRICTED
    from service.store.kinds import MEASURE
    from service.writes import insert

    foreign = {
        "resourceType": "Measure",
        "url": "https://example.org/Measure/other",
        "version": "1",
        "status": "active",
    }
    with app.web.services.db.transaction() as session:
        insert(session, app.web.services, MEASURE, foreign, UNRESTRICTED, resource_id="other")
    response = fhir.get(f"Measure/other/$evaluate-measure?{PERIOD}")
    assert response.status_code == 422
    assert "not one of the outcome Measures" in response.get_json()["issue"][0]["details"]["text"]


def test_only_user_or_system_grants_that_read_observations_may_evaluate(
    fhir: Fhir, population: dict[str, Any], keys: Keys
) -> None:
    path = f"Measure/reliable-improvement/$evaluate-measure?{PERIOD}"
    patient = fhir.as_token(keys.token("patient/*.rs", patient="a"))
    refused = patient.get(f"{path}&subject=Patient/a")
    assert refused.status_code == 403 and "patient-scoped" in refused.get_json()["issue"][0]["details"]["text"]
    no_observations = fhir.as_token(keys.token("user/Measure.rs user/Group.rs user/QuestionnaireResponse.rs"))
    assert no_observations.get(path).status_code == 403
    observations_only = fhir.as_token(keys.token("user/Observation.rs"))
    assert observations_only.get(path).status_code == 200  # the whole service needs no Group scope
    group = observations_only.get(f"{path}&subject=Group/{GROUP}")
    assert group.status_code == 403 and "Group" in group.get_json()["issue"][0]["details"]["text"]
    assert (
        fhir.as_token(keys.token("system/Observation.rs system/Group.rs"))
        .get(f"{path}&subject=Group/{GROUP}")
        .status_code
        == 200
    )
    assert fhir.as_token(None).get(path).status_code == 401
    refusals = fhir.get("AuditEvent?type=operation-evaluate-measure&outcome=4").get_json()
    assert refusals["total"] == 4  # every refusal is audited too: three 403s and the 401


def test_the_tokens_scope_filters_limit_what_is_counted(fhir: Fhir, population: dict[str, Any], keys: Keys) -> None:
    path = f"Measure/paired-outcomes/$evaluate-measure?{PERIOD}&subject=Group/{GROUP}"
    survey = fhir.as_token(keys.token("user/Observation.rs?category=survey user/Group.rs")).get(path)
    assert counts(stratum(survey.get_json(), *PHQ9_TOTAL)) == (6, 6, 5)
    gad7_only = fhir.as_token(keys.token("user/Observation.rs?code=http://loinc.org|70274-6 user/Group.rs")).get(path)
    assert gad7_only.status_code == 200
    assert counts(stratum(gad7_only.get_json(), *PHQ9_TOTAL)) == (0, 0, 0)  # PHQ-9 Observations are not theirs


def test_a_patient_scoped_token_reads_only_individual_reports_about_its_patient(
    fhir: Fhir, population: dict[str, Any], keys: Keys
) -> None:
    own = evaluate(fhir, "reliable-improvement", "&subject=Patient/d")
    group = evaluate(fhir, "reliable-improvement", f"&subject=Group/{GROUP}")
    patient = fhir.as_token(keys.token("patient/MeasureReport.rs", patient="d"))
    assert patient.get(f"MeasureReport/{own['id']}").status_code == 200
    # About many people: not visible to a patient-scoped token, answered as if it did not exist (as every read
    # outside the caller's grant is, so that ids tell nothing).
    assert patient.get(f"MeasureReport/{group['id']}").status_code == 404
    found = patient.get("MeasureReport").get_json()
    assert [entry["resource"]["id"] for entry in found["entry"]] == [own["id"]]
    other = fhir.as_token(keys.token("patient/MeasureReport.rs", patient="a"))
    assert other.get(f"MeasureReport/{own['id']}").status_code == 404
