"""What a submitted response must be before it is stored, and what is said about it (pure).

Validation against its Questionnaire and server-side scoring decide; on top of them one rule of the service's
own: a response that says it is complete must answer something. A score the instrument's missing-item rule
leaves unmade is not an error (the answers are kept), but it is said plainly, naming the score and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.cds.measures import instrument_label
from service.fhir.errors import Unprocessable
from service.fhir.issues import Issue
from service.fhir.response_status import SCORED_STATUSES
from service.scoring import ScoringResult, score_response
from service.scoring.inputs import score_inputs
from service.validation import ValueSetResolver, validate_response


@dataclass(frozen=True, slots=True)
class CheckedResponse:
    scoring: ScoringResult  # the response with the server's scores filled in, and what they are
    warnings: list[Issue]  # everything short of an error, for Prefer: return=OperationOutcome


def check_response(
    questionnaire: Mapping[str, Any], response: Mapping[str, Any], value_sets: ValueSetResolver | None = None
) -> CheckedResponse:
    """Validate then score: raises 422 listing every error; returns the scored response and the warnings.
    ``value_sets``: where answer value sets the Questionnaire does not contain are found (the stored ones)."""
    issues = validate_response(questionnaire, response, value_sets=value_sets) + answers_something(response)
    errors = [issue for issue in issues if issue.is_error]
    if errors:
        raise Unprocessable(errors)
    scoring = score_response(questionnaire, response)
    scoring_errors = [issue for issue in scoring.issues if issue.is_error]
    if scoring_errors:
        raise Unprocessable(scoring_errors)
    warnings = [issue for issue in issues if not issue.is_error] + list(scoring.issues)
    return CheckedResponse(scoring, warnings + not_scored(questionnaire, response, scoring))


def validation_outcome(
    questionnaire: Mapping[str, Any], response: Mapping[str, Any], value_sets: ValueSetResolver | None = None
) -> list[Issue]:
    """Every issue a submission of this response would meet ($validate): nothing raised, nothing stored."""
    issues = validate_response(questionnaire, response, value_sets=value_sets) + answers_something(response)
    if not any(issue.is_error for issue in issues):
        scoring = score_response(questionnaire, response)
        issues += list(scoring.issues)
        if not any(issue.is_error for issue in scoring.issues):
            issues += not_scored(questionnaire, response, scoring)
    return issues


def _has_answer(items: Any) -> bool:
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        for answer in item.get("answer") or ():
            if isinstance(answer, Mapping) and any(key.startswith("value") for key in answer):
                return True
            if isinstance(answer, Mapping) and _has_answer(answer.get("item")):
                return True
        if _has_answer(item.get("item")):
            return True
    return False


def answers_something(response: Mapping[str, Any]) -> list[Issue]:
    """A completed or amended response that answers no question is clinically empty: it would stand in the record
    as a completed measure with nothing in it."""
    status = response.get("status")
    if status not in SCORED_STATUSES or _has_answer(response.get("item")):
        return []
    return [
        Issue(
            "error",
            "required",
            f"A {status} QuestionnaireResponse must answer at least one question; this one answers none. Send it "
            "as 'in-progress' to keep a response that has been started",
            "QuestionnaireResponse.item",
        )
    ]


def _answered_link_ids(items: Any, found: set[str]) -> set[str]:
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        answers = [answer for answer in item.get("answer") or () if isinstance(answer, Mapping)]
        if any(key.startswith("value") for answer in answers for key in answer):
            found.add(str(item.get("linkId")))
        for answer in answers:
            _answered_link_ids(answer.get("item"), found)
        _answered_link_ids(item.get("item"), found)
    return found


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why one score was not made: how many of the items it is made from were answered, and how many it needs."""

    link_id: str  # the score item's
    name: str  # "PHQ-9 total score"
    answered: int | None  # None: which items the score is made from is not known
    items: int | None
    minimum: int | None  # the score-minimum-answers number (None: not declared)


def shortfalls(
    questionnaire: Mapping[str, Any], response: Mapping[str, Any], missing: Sequence[tuple[str, str | None]]
) -> list[Shortfall]:
    """For each score left unmade in ``response`` ((linkId, text) of its item), the counts that explain it."""
    inputs = score_inputs(questionnaire)
    answered = _answered_link_ids(response.get("item"), set())
    label = instrument_label(questionnaire, str(questionnaire.get("url") or ""))
    found = []
    for link_id, text in missing:
        name = score_name(label, text or link_id)
        made_from = inputs.get(link_id)
        if made_from is None or not made_from.items:
            found.append(Shortfall(link_id, name, None, None, None))
        else:
            count = sum(1 for item in made_from.items if item in answered)
            found.append(Shortfall(link_id, name, count, len(made_from.items), made_from.minimum))
    return found


def not_scored(questionnaire: Mapping[str, Any], response: Mapping[str, Any], scoring: ScoringResult) -> list[Issue]:
    """A warning for each score a completed response was left without, naming the score and the rule."""
    if response.get("status") not in SCORED_STATUSES:
        return []
    missing = [(score.link_id, score.text) for score in scoring.scores if score.value is None]
    if not missing:
        return []
    warnings = []
    for shortfall in shortfalls(questionnaire, response, missing):
        if shortfall.items is None:
            text = f"{shortfall.name} not scored: the instrument's scoring rule gives no score for these answers"
        else:
            text = f"{shortfall.name} not scored: {shortfall.answered} of {shortfall.items} items answered"
            if shortfall.minimum is not None:
                text += f", at least {shortfall.minimum} needed"
        warnings.append(Issue("warning", "incomplete", text, "QuestionnaireResponse", shortfall.link_id))
    return warnings


def score_name(label: str, text: str) -> str:
    """A score's name for a sentence: its item text up to the first aside ("PHQ-9 total score (0-27)" -> "PHQ-9 total
    score"), led by the instrument's short name when the text does not start with it."""
    name = text
    for separator in (" (", ": "):
        name = name.split(separator, 1)[0]
    if label in name:
        return name
    first = name.split(" ", 1)[0]
    if first[:1].isupper() and first[1:].islower():  # "Subjective quality ..." reads "DIALOG subjective quality ..."
        name = name[0].lower() + name[1:]
    return f"{label} {name}"
