"""The outcome Measures' pure parts: score facts from the library, Jacobson and Truax's classification, the counts and
the MeasureReport they make (docs/outcomes.md has the definitions)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.measurereport import MeasureReport
from hypothesis import given, settings
from hypothesis import strategies as st

from service.outcomes.classify import (
    CLINICALLY_SIGNIFICANT,
    MEASURES,
    PAIRED,
    RELIABLE_DETERIORATION,
    RELIABLE_IMPROVEMENT,
    Rate,
    Series,
    Tally,
    classify,
    rate,
)
from service.outcomes.facts import ScoreFacts, latest_versions, score_facts
from service.outcomes.report import ReportRequest, measure_report
from tests.unit.instruments.library import questionnaire, slugs

SD = "https://recovery-proms.org/fhir/StructureDefinition/"


def facts_of(slug: str, code: str) -> ScoreFacts:
    return next(f for f in score_facts([questionnaire(slug)]) if f.code == code)


PHQ9 = facts_of("phq-9", "44261-6")


def series(first: float, *rest: float, subject: str = "p") -> Series:
    values = [first, *rest]
    return Series(subject, len(values), Decimal(repr(values[0])), Decimal(repr(values[-1])))


# facts --------------------------------------------------------------------------------------------------------


def test_the_library_states_the_facts_the_fact_sheets_give() -> None:
    facts = {f.key: f for f in score_facts(latest_versions(questionnaire(slug) for slug in slugs()))}
    phq9 = facts[("http://loinc.org", "44261-6")]
    assert (phq9.direction, phq9.reliable_change, phq9.clinical_cutoff) == ("lower-is-better", 6, 10)
    assert phq9.name == "PHQ-9 total score (0–27)"
    gad7 = facts[("http://loinc.org", "70274-6")]
    assert (gad7.reliable_change, gad7.clinical_cutoff) == (4, 8)  # NHS Talking Therapies caseness, not the 10
    core10 = facts[("https://recovery-proms.org/fhir/CodeSystem/core-10", "clinical-score")]
    assert (core10.reliable_change, core10.clinical_cutoff) == (6, 11)
    qpr15 = facts[("https://recovery-proms.org/fhir/CodeSystem/qpr", "qpr-15-total")]
    assert (qpr15.direction, qpr15.reliable_change, qpr15.clinical_cutoff) == ("higher-is-better", None, None)
    # The K6 score is in the K6 and in the K10, with the same code and the same facts: one score, two sources.
    k6 = facts[("https://recovery-proms.org/fhir/CodeSystem/kessler", "k6-total")]
    assert len(k6.sources) == 2 and k6.clinical_cutoff == 13 and not k6.disagreements
    assert k6.instrument.count(";") == 1


def test_questionnaires_that_disagree_on_a_fact_leave_it_absent_and_say_so() -> None:
    k6, k10 = questionnaire("k6"), copy.deepcopy(questionnaire("k10"))
    for item in k10["item"]:
        for extension in item.get("extension", []):
            if item["linkId"] == "k6-total" and extension["url"] == SD + "clinical-cutoff":
                extension["valueDecimal"] = 12
    (found,) = [f for f in score_facts([k6, k10]) if f.code == "k6-total"]
    assert found.clinical_cutoff is None and found.disagreements == ("clinical-cutoff",)
    assert "no agreed clinical-cutoff" in found.lacking(CLINICALLY_SIGNIFICANT.needs)[-1]


def test_the_latest_active_version_of_each_questionnaire_states_the_facts() -> None:
    def version(number: str, status: str) -> dict[str, Any]:
        return {"url": "http://x/Q", "version": number, "status": status}

    found = latest_versions([version("1.9.0", "active"), version("1.10.0", "active"), version("2.0.0", "draft"),
                             version("3.0.0", "retired")])  # fmt: skip
    assert [q["version"] for q in found] == ["1.10.0"]
    assert [q["version"] for q in latest_versions([version("1.0.0", "retired"), version("0.9", "retired")])] == [
        "1.0.0"
    ]


# classification ------------------------------------------------------------------------------------------------


def test_a_change_of_exactly_the_threshold_is_reliable() -> None:
    assert classify(series(16, 10), PHQ9).change == "improved"  # -6: the threshold itself counts
    assert classify(series(16, 11), PHQ9).change == "no-reliable-change"  # -5
    assert classify(series(4, 10), PHQ9).change == "deteriorated"  # +6 on a lower-is-better score


def test_the_cut_off_itself_is_in_the_clinical_range() -> None:
    ending_on_it = classify(series(17, 10), PHQ9)  # reliably better, but 10 is still a case
    assert ending_on_it.clinical_start and ending_on_it.change == "improved" and not ending_on_it.recovered
    assert classify(series(17, 9), PHQ9).recovered
    starting_on_it = classify(series(10, 3), PHQ9)
    assert starting_on_it.clinical_start and starting_on_it.recovered
    assert not classify(series(9, 2), PHQ9).clinical_start  # started below the cut-off: not in the denominator


def test_one_score_is_no_paired_outcome_whatever_its_value() -> None:
    single = classify(series(27), PHQ9)
    assert (single.paired, single.change, single.clinical_start, single.recovered) == (False, None, False, False)
    assert list(single.categories()) == ["people"]


def test_higher_is_better_scores_turn_the_cut_off_around() -> None:
    facts = ScoreFacts("s", "c", (), "A wellbeing score", "W", ("W|1",), "higher-is-better", Decimal(3),
                       Decimal(40))  # fmt: skip
    assert classify(series(38, 44), facts).recovered  # from <= 40 (clinical) to above it, up 6
    assert not classify(series(38, 40), facts).recovered  # up 2: not reliable
    assert classify(series(50, 45), facts).change == "deteriorated"


def test_a_score_without_a_threshold_has_paired_outcomes_but_no_reliable_change() -> None:
    qpr = facts_of("qpr-15", "qpr-15-total")
    found = classify(series(20, 50), qpr)
    assert found.paired and found.change is None and not found.recovered
    tally = Tally.new(qpr, with_members=False)
    tally.add(series(20, 50))
    assert rate(PAIRED, tally) == Rate(1, 1)
    assert rate(RELIABLE_IMPROVEMENT, tally) is None  # not 0 of 1: not counted at all
    assert RELIABLE_IMPROVEMENT.lacking(qpr) == ["no reliable-change threshold"]


def test_rates_are_given_with_their_counts() -> None:
    assert Rate(2, 5).words() == "2 of 5 (40%)"
    assert Rate(1, 8).words() == "1 of 8 (13%)"  # 12.5 rounds half up
    assert Rate(0, 0).words() == "0 of 0 (no one to count)" and Rate(0, 0).proportion is None
    assert Rate(1, 3).proportion == Decimal("0.3333")


# the counts ----------------------------------------------------------------------------------------------------

scores = st.integers(min_value=0, max_value=27)


@st.composite
def populations(draw: st.DrawFn) -> tuple[ScoreFacts, list[Series]]:
    facts = ScoreFacts(
        "s", "c", (), "score", "instrument", ("q|1",),
        draw(st.sampled_from(["lower-is-better", "higher-is-better"])),
        Decimal(draw(st.integers(min_value=1, max_value=12))),
        Decimal(draw(st.integers(min_value=0, max_value=27))),
    )  # fmt: skip
    people = draw(st.lists(st.tuples(st.integers(min_value=1, max_value=4), scores, scores), max_size=40))
    return facts, [Series(f"p{i}", n, Decimal(first), Decimal(last)) for i, (n, first, last) in enumerate(people)]


@settings(max_examples=300, deadline=None)
@given(populations())
def test_the_counts_are_consistent_whoever_is_counted(population: tuple[ScoreFacts, list[Series]]) -> None:
    facts, people = population
    tally = Tally.new(facts, with_members=True)
    for person in people:
        tally.add(person)
    counts, members = tally.counts, tally.members
    assert members is not None
    assert counts["people"] == len(people)
    # Everyone with a paired outcome reliably improved, reliably deteriorated, or neither: exactly one of them.
    assert counts["improved"] + counts["deteriorated"] + counts["no-reliable-change"] == counts["paired"]
    assert counts["recovered"] <= counts["clinical-start"] <= counts["paired"] <= counts["people"]
    assert set(members["recovered"]) <= set(members["improved"]) & set(members["clinical-start"])
    for measure in MEASURES.values():
        found = rate(measure, tally)
        assert found is not None and found.numerator <= found.denominator <= counts[measure.initial]
        assert set(members[measure.numerator]) <= set(members[measure.denominator]) <= set(members[measure.initial])
        assert found.proportion is None or Decimal(0) <= found.proportion <= Decimal(1)


# the MeasureReport ---------------------------------------------------------------------------------------------


def test_a_subject_list_report_is_a_valid_measure_report_with_the_people_of_each_population() -> None:
    tally = Tally.new(PHQ9, with_members=True)
    for subject, values in {
        "a": (15, 5),
        "b": (12, 8),
        "c": (8, 16),
        "d": (20, 13),
        "e": (14, 14, 9),
        "f": (18,),
    }.items():
        tally.add(series(*values, subject=subject))
    qpr = Tally.new(facts_of("qpr-15", "qpr-15-total"), with_members=True)
    measure = {"url": "https://recovery-proms.org/fhir/Measure/clinically-significant-improvement", "version": "1.0.0"}
    request = ReportRequest(measure, CLINICALLY_SIGNIFICANT, "subject-list", "Group/g", "2026-01-01", "2026-06-30")
    report = measure_report(request, [tally, qpr], date="2026-07-01T00:00:00.000Z")
    MeasureReport.model_validate(report)
    phq9, not_counted = report["group"][0]["stratifier"][0]["stratum"]
    contained = {r["id"]: r for r in report["contained"]}
    lists = {}
    for population in phq9["population"]:
        found = contained[population["subjectResults"]["reference"].removeprefix("#")]
        lists[population["code"]["coding"][0]["code"]] = [
            entry["item"]["reference"] for entry in found.get("entry", [])
        ]
    assert lists == {
        "initial-population": [f"Patient/{p}" for p in "abcdef"],
        "denominator": ["Patient/a", "Patient/b", "Patient/d", "Patient/e"],  # paired and starting at 10 or more
        "numerator": ["Patient/a"],  # 15 -> 5: reliably better and below 10
    }
    assert phq9["measureScore"] == {"value": 0.25}
    assert report["improvementNotation"]["coding"][0]["code"] == "increase"
    assert "population" not in not_counted
    assert not_counted["measureScore"]["extension"][0]["valueCode"] == "not-applicable"
    texts = [issue["details"]["text"] for issue in contained["messages"]["issue"]]
    assert any("no reliable-change threshold; no clinical cut-off" in text for text in texts)


def test_a_deterioration_report_says_lower_is_better() -> None:
    measure = {"url": "https://recovery-proms.org/fhir/Measure/reliable-deterioration", "version": "1.0.0"}
    request = ReportRequest(measure, RELIABLE_DETERIORATION, "summary", None, "2026", "2026")
    report = measure_report(request, [Tally.new(PHQ9, with_members=False)], date="2026-07-01T00:00:00.000Z")
    assert report["improvementNotation"]["coding"][0]["code"] == "decrease"
    (stratum,) = report["group"][0]["stratifier"][0]["stratum"]
    assert [p["count"] for p in stratum["population"]] == [0, 0, 0] and "measureScore" not in stratum  # 0 of 0
    assert "subject" not in report
