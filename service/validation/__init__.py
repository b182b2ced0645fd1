"""Validation of a QuestionnaireResponse against its Questionnaire (FHIR R4 and the SDC extensions).

Pure: no I/O, no HTTP, no database. The caller resolves ``QuestionnaireResponse.questionnaire`` and
passes the Questionnaire; value sets the Questionnaire does not contain are asked of ``value_sets``.
Every problem found is returned as an :class:`~service.fhir.issues.Issue`; nothing is raised and
neither input is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.fhir.issues import Issue
from service.fhir.memo import PerObject
from service.fhir.response_status import RESPONSE_STATUSES
from service.validation import questionnaire_state
from service.validation.context import Context, ValueSetResolver
from service.validation.enable_when import Enablement
from service.validation.expressions import Expressions
from service.validation.structure import Walker
from service.validation.tree import QuestionnaireIndex, build_tree
from service.validation.value_sets import ValueSets

__all__ = ["Issue", "ValueSetResolver", "validate_response"]

# What validation works out from a Questionnaire alone (items by linkId, each item's facts), once per Questionnaire.
_index_for = PerObject(QuestionnaireIndex)


def validate_response(
    questionnaire: Mapping[str, Any],
    response: Mapping[str, Any],
    *,
    value_sets: ValueSetResolver | None = None,
) -> list[Issue]:
    """All the ways ``response`` does not conform to ``questionnaire``, most serious first.

    The response status decides how missing answers count: an error for ``completed`` and
    ``amended``, a warning for ``in-progress``, nothing for ``stopped`` and ``entered-in-error``.
    """
    if not isinstance(questionnaire, Mapping) or questionnaire.get("resourceType") != "Questionnaire":
        return [Issue("error", "structure", "The questionnaire given is not a Questionnaire resource")]
    if not isinstance(response, Mapping) or response.get("resourceType") != "QuestionnaireResponse":
        return [Issue("error", "structure", "The response given is not a QuestionnaireResponse resource")]
    context = Context(questionnaire, response, value_sets)
    # A defect in the validator raises: it is the server's failure (logged, answered 500), not the client's.
    _validate(context)
    order = {"fatal": 0, "error": 1, "warning": 2, "information": 3}
    return sorted(context.issues, key=lambda issue: order[issue.severity])


def _validate(context: Context) -> None:
    status = context.response.get("status")
    if not isinstance(status, str) or status not in RESPONSE_STATUSES:
        context.add(
            "error",
            "value" if status is not None else "required",
            f"The response status {status!r} is not one of {', '.join(sorted(RESPONSE_STATUSES))}; "
            "it was checked as completed",
            "QuestionnaireResponse.status",
        )
    questionnaire_state.check(context)
    index = _index_for(context.questionnaire)
    root = build_tree(index, context.response)
    expressions = Expressions(context, index)
    enablement = Enablement(context, index, expressions, root)
    Walker(context, index, enablement, expressions, ValueSets(context)).run(root)
