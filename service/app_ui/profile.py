"""The item profile of one response: each rated item on its own scale, and strengths and possible priorities.

An item's rating is its answer's weight placed on the range of its options' weights (or its minValue to
maxValue), turned round when lower is better, so 1 is always the most favourable answer and 0 the least;
its distance is the other way round (0 the best answer, 1 the worst). Reverse-scored items need nothing
special: their weights already run the other way, so the weights place every answer.
Which way is better comes from the item's own ``score-direction``, else from the instrument's scores when
they agree, else higher is better. Strengths are the items rated above the middle of their scale, highest
first; possible priorities those below it, lowest first; ties keep the Questionnaire's order. An item
answered exactly in the middle is neither: it is a conversation starter only when the person says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.scoring import extensions as ext
from service.scoring.interpret import direction_of

PROFILE_ITEM = ext.PROJECT + "profile-item"
RECOVERY_DOMAIN = ext.PROJECT + "recovery-domain"
MIN_VALUE = ext.CORE + "minValue"
MAX_VALUE = ext.CORE + "maxValue"
HIGHER_IS_BETTER = "higher-is-better"
DEFAULT_COUNT = 3


@dataclass(frozen=True)
class ItemRating:
    link_id: str
    text: str
    answer: str  # what the person answered, as shown to them
    weight: float
    low: float
    high: float
    relative: float  # 0 least favourable .. 1 most favourable, on the item's own scale
    domain: str | None  # the first recovery-domain's display
    profile: bool  # the item carries profile-item: it takes part in strengths and priorities
    prefix: str | None = None  # the item's number as the person saw it ("9"), without its full stop
    safety: bool = False  # a safety flag is raised from this item
    best: float | None = None  # the weight of the most favourable answer (None: not known)

    @property
    def distance(self) -> float:
        """How far the answer is from the best answer on this item: 0 the best, 1 the worst."""
        return 1.0 - self.relative

    @property
    def points_from_best(self) -> float:
        """The distance in the item's own weights (e.g. 2 of a possible 3)."""
        return abs(self.weight - (self.best if self.best is not None else self.high))

    @property
    def span(self) -> float:
        return self.high - self.low


def _items(items: Any) -> Iterator[Mapping[str, Any]]:
    for item in ext.as_list(items):
        if isinstance(item, Mapping):
            yield item
            yield from _items(item.get("item"))


def _answers(items: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for item in ext.as_list(items):
        item = ext.as_mapping(item)
        for answer in ext.as_list(item.get("answer")):
            answer = ext.as_mapping(answer)
            yield str(item.get("linkId")), answer
            yield from _answers(answer.get("item"))
        yield from _answers(item.get("item"))


def first_answers(response: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The first answer to each linkId in a response (nested items included)."""
    found: dict[str, Mapping[str, Any]] = {}
    for link_id, answer in _answers(response.get("item")):
        found.setdefault(link_id, answer)
    return found


def is_profile_item(item: Mapping[str, Any]) -> bool:
    extension = ext.first_extension(item, PROFILE_ITEM)
    return extension is not None and extension.get("valueBoolean") is True


def instrument_direction(questionnaire: Mapping[str, Any]) -> str:
    """The direction the instrument's scores share, or higher-is-better when they give none or disagree."""
    directions = {direction_of(item) for item in _items(questionnaire.get("item")) if item.get("readOnly") is True}
    directions.discard(None)
    return str(directions.pop()) if len(directions) == 1 else HIGHER_IS_BETTER


def _option_value(option: Mapping[str, Any]) -> tuple[str, Any] | None:
    for key, value in option.items():
        if key.startswith("value"):
            return key, value
    return None


def _same(answer: Mapping[str, Any], option: Mapping[str, Any]) -> bool:
    found = _option_value(option)
    if found is None or found[0] not in answer:
        return False
    key, value = found
    given = answer[key]
    if key == "valueCoding":
        given, value = ext.as_mapping(given), ext.as_mapping(value)
        systems = (given.get("system"), value.get("system"))
        return given.get("code") == value.get("code") and (None in systems or systems[0] == systems[1])
    return bool(given == value)


def _weight(option: Mapping[str, Any]) -> float | None:
    weight = ext.embedded_weight(option)
    if weight is None:
        weight = ext.embedded_weight(option.get("valueCoding"))
    return None if weight is None else float(weight)


def answer_display(answer: Mapping[str, Any]) -> str:
    """An answer as the person saw it: a choice's display, else its value."""
    found = _option_value(answer)
    if found is None:
        return ""
    key, value = found
    if key == "valueCoding":
        coding = ext.as_mapping(value)
        return str(coding.get("display") or coding.get("code") or "")
    return str(value)


def _scale(item: Mapping[str, Any], answer: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """(weight, low, high) of the answer on the item's scale, or None when the item has no scale."""
    options = [ext.as_mapping(option) for option in ext.as_list(item.get("answerOption"))]
    if options:
        weights = [_weight(option) for option in options]
        if all(weight is None for weight in weights):
            weights = [float(index) for index in range(len(options))]  # unweighted: the options' order
        known = [weight for weight in weights if weight is not None]
        chosen = next((w for option, w in zip(options, weights, strict=True) if _same(answer, option)), None)
        if chosen is None or len(known) < 2:
            return None
        return chosen, min(known), max(known)
    if item.get("type") in ("integer", "decimal"):
        low, high = ext.first_extension(item, MIN_VALUE), ext.first_extension(item, MAX_VALUE)
        value = ext.to_number(answer.get("valueInteger", answer.get("valueDecimal")))
        if low is None or high is None or value is None:
            return None
        bounds = [ext.to_number(limit.get("valueInteger", limit.get("valueDecimal"))) for limit in (low, high)]
        if bounds[0] is None or bounds[1] is None:
            return None
        return float(value), float(bounds[0]), float(bounds[1])
    return None


def item_number(item: Mapping[str, Any]) -> str | None:
    """The item's number as printed on the form: its ``prefix`` without the trailing full stop ("9." -> "9")."""
    prefix = item.get("prefix")
    if not isinstance(prefix, str) or not prefix.strip():
        return None
    return prefix.strip().rstrip(".").strip() or None


def _domain(item: Mapping[str, Any]) -> str | None:
    extension = ext.first_extension(item, RECOVERY_DOMAIN)
    coding = ext.as_mapping(extension.get("valueCoding")) if extension is not None else {}
    display = coding.get("display") or coding.get("code")
    return str(display) if display else None


def rate_items(
    questionnaire: Mapping[str, Any], response: Mapping[str, Any], *, profile_only: bool = True
) -> list[ItemRating]:
    """The answered items with a scale, in Questionnaire order (only profile items unless told otherwise)."""
    answers = first_answers(response)
    default_direction = instrument_direction(questionnaire)
    ratings = []
    for item in _items(questionnaire.get("item")):
        link_id = str(item.get("linkId"))
        profile = is_profile_item(item)
        if item.get("readOnly") is True or (profile_only and not profile) or link_id not in answers:
            continue
        scale = _scale(item, answers[link_id])
        if scale is None:
            continue
        weight, low, high = scale
        if high <= low:
            continue
        relative = min(1.0, max(0.0, (weight - low) / (high - low)))
        higher_is_better = (direction_of(item) or default_direction) == HIGHER_IS_BETTER
        if not higher_is_better:
            relative = 1.0 - relative
        ratings.append(
            ItemRating(
                link_id=link_id,
                text=str(item.get("text") or link_id),
                answer=answer_display(answers[link_id]),
                weight=weight,
                low=low,
                high=high,
                relative=relative,
                domain=_domain(item),
                profile=profile,
                prefix=item_number(item),
                safety=ext.first_extension(item, ext.SAFETY_FLAG) is not None,
                best=high if higher_is_better else low,
            )
        )
    return ratings


def strengths_and_priorities(
    ratings: Sequence[ItemRating], count: int = DEFAULT_COUNT
) -> tuple[list[ItemRating], list[ItemRating]]:
    """(strengths, possible priorities) among the profile items: see the module docstring."""
    order = {rating.link_id: index for index, rating in enumerate(ratings)}
    profile = [rating for rating in ratings if rating.profile]
    strengths = sorted((r for r in profile if r.relative > 0.5), key=lambda r: (-r.relative, order[r.link_id]))
    priorities = sorted((r for r in profile if r.relative < 0.5), key=lambda r: (r.relative, order[r.link_id]))
    return strengths[:count], priorities[:count]


@dataclass(frozen=True)
class DomainSummary:
    domain: str
    mean: float  # mean rating of its items, 0..1
    items: int


def domain_summaries(ratings: Sequence[ItemRating]) -> list[DomainSummary]:
    """The mean rating of each recovery domain's items, in the order the domains first appear."""
    grouped: dict[str, list[float]] = {}
    for rating in ratings:
        if rating.domain is not None:
            grouped.setdefault(rating.domain, []).append(rating.relative)
    return [DomainSummary(domain, sum(values) / len(values), len(values)) for domain, values in grouped.items()]
