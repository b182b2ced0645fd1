"""Whether the Questionnaire was one to answer: its publication status and its effective period."""

from __future__ import annotations

from collections.abc import Mapping

from service.validation.context import Context, text_value
from service.validation.primitives import date_range


def check(context: Context) -> None:
    questionnaire = context.questionnaire
    url = text_value(questionnaire.get("url")) or text_value(questionnaire.get("id"))
    name = f"The Questionnaire {url}" if url else "The Questionnaire"
    status = questionnaire.get("status")
    if status == "draft":
        context.add(
            "warning",
            "business-rule",
            f"{name} is a draft: answers to it may not be usable once it is published",
            "QuestionnaireResponse.questionnaire",
        )
    elif status == "retired":
        context.add(
            "warning",
            "business-rule",
            f"{name} is retired and should no longer be answered",
            "QuestionnaireResponse.questionnaire",
        )
    period = questionnaire.get("effectivePeriod")
    authored = date_range(context.response.get("authored"), with_time=True)
    if not isinstance(period, Mapping) or authored is None:
        return
    start = date_range(period.get("start"), with_time=True)
    end = date_range(period.get("end"), with_time=True)
    when = context.response.get("authored")
    if start is not None and authored[1] < start[0]:
        context.add(
            "warning",
            "business-rule",
            f"The response was authored on {when}, before the Questionnaire's effective period starts "
            f"({period.get('start')})",
            "QuestionnaireResponse.authored",
        )
    if end is not None and authored[0] > end[1]:
        context.add(
            "warning",
            "business-rule",
            f"The response was authored on {when}, after the Questionnaire's effective period ended "
            f"({period.get('end')})",
            "QuestionnaireResponse.authored",
        )
