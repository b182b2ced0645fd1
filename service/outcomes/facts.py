"""What outcome Measures need to know of each score, read from the Questionnaires that define it: the code its
Observations carry, which way is better, its reliable-change threshold and its clinical cut-off.

Nothing is guessed: a fact the Questionnaire does not state is absent, and a score whose Questionnaires disagree on
a fact (two instruments carrying the same score code with different thresholds) has that fact absent too, with the
disagreement said.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from service.scoring import extensions as ext
from service.scoring.interpret import direction_of

DIRECTION = "score-direction"
RELIABLE_CHANGE = "reliable-change"
CLINICAL_CUTOFF = "clinical-cutoff"
FACT_NAMES = {
    DIRECTION: "no score-direction (which way is better)",
    RELIABLE_CHANGE: "no reliable-change threshold",
    CLINICAL_CUTOFF: "no clinical cut-off",
}
USABLE_STATUSES = ("active", "retired")


@dataclass(frozen=True, slots=True)
class ScoreFacts:
    """One score as outcome Measures see it. ``system``/``code`` is its first coding: what its Observations are
    found by (every score Observation carries its item's codes)."""

    system: str
    code: str
    codings: tuple[Mapping[str, Any], ...]
    name: str  # the score item's text, e.g. "PHQ-9 total score (0–27)"
    instrument: str  # the title of the Questionnaire (or Questionnaires) that define it
    sources: tuple[str, ...]  # their canonical url|version
    direction: str | None
    reliable_change: Decimal | None
    clinical_cutoff: Decimal | None
    disagreements: tuple[str, ...] = ()  # facts the defining Questionnaires disagree on (left absent)

    @property
    def key(self) -> tuple[str, str]:
        return self.system, self.code

    def lacking(self, needed: Iterable[str]) -> list[str]:
        """The needed facts this score does not have, in words (empty: it has them all)."""
        present = {
            DIRECTION: self.direction is not None,
            RELIABLE_CHANGE: self.reliable_change is not None,
            CLINICAL_CUTOFF: self.clinical_cutoff is not None,
        }
        found = []
        for name in needed:
            if not present[name]:
                why = FACT_NAMES[name]
                if name in self.disagreements:
                    why = f"no agreed {name} (the Questionnaires defining it give different values)"
                found.append(why)
        return found

    def clinical(self, value: Decimal) -> bool:
        """Whether a score is on the clinical side of the cut-off (the cut-off itself is clinical)."""
        assert self.clinical_cutoff is not None and self.direction is not None
        if self.direction == "lower-is-better":
            return value >= self.clinical_cutoff
        return value <= self.clinical_cutoff


def _version_key(version: str | None) -> tuple[tuple[int, int | str], ...]:
    """'1.10.0' sorts after '1.9.0'; a part that is not a number sorts after the numbers, as text."""
    parts = re.split(r"[.\-+]", version or "")
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts)


def latest_versions(questionnaires: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The version of each Questionnaire url that states its facts: the latest active one, else the latest retired
    one (drafts never), in url order."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for questionnaire in questionnaires:
        url, status = questionnaire.get("url"), questionnaire.get("status")
        if not isinstance(url, str) or status not in USABLE_STATUSES:
            continue
        current = chosen.get(url)
        rank = (status == "active", _version_key(questionnaire.get("version")))
        if current is None or rank > (current.get("status") == "active", _version_key(current.get("version"))):
            chosen[url] = questionnaire
    return [chosen[url] for url in sorted(chosen)]


def _score_items(items: Sequence[Any]) -> Iterator[Mapping[str, Any]]:
    for item in ext.as_list(items):
        if not isinstance(item, Mapping):
            continue
        if ext.first_extension(item, ext.CALCULATED_EXPRESSION) is not None:
            yield item
        yield from _score_items(item.get("item", []))


def _decimal(item: Mapping[str, Any], url: str) -> Decimal | None:
    extension = ext.first_extension(item, url)
    number = ext.to_number(extension.get("valueDecimal")) if extension is not None else None
    return None if number is None else Decimal(number)


@dataclass
class _Found:
    codings: tuple[Mapping[str, Any], ...]
    name: str
    instruments: list[str]
    sources: list[str]
    values: dict[str, set[Any]]


def score_facts(questionnaires: Iterable[Mapping[str, Any]]) -> list[ScoreFacts]:
    """The facts of every coded score of these Questionnaires (pass ``latest_versions``), one per score code, in the
    order the Questionnaires and their items come."""
    found: dict[tuple[str, str], _Found] = {}
    for questionnaire in questionnaires:
        canonical = f"{questionnaire.get('url')}|{questionnaire.get('version')}"
        title = str(questionnaire.get("title") or questionnaire.get("name") or questionnaire.get("url"))
        for item in _score_items(questionnaire.get("item", [])):
            codings = tuple(c for c in ext.as_list(item.get("code")) if isinstance(c, Mapping) and c.get("code"))
            if not codings:
                continue  # its Observations could not be told apart from others
            key = (str(codings[0].get("system") or ""), str(codings[0]["code"]))
            entry = found.get(key)
            if entry is None:
                name = str(item.get("text") or codings[0].get("display") or codings[0]["code"])
                entry = found[key] = _Found(codings, name, [], [], {DIRECTION: set(), RELIABLE_CHANGE: set(),
                                                                     CLINICAL_CUTOFF: set()})  # fmt: skip
            if title not in entry.instruments:
                entry.instruments.append(title)
            entry.sources.append(canonical)
            entry.values[DIRECTION].add(direction_of(item))
            entry.values[RELIABLE_CHANGE].add(_decimal(item, ext.RELIABLE_CHANGE))
            entry.values[CLINICAL_CUTOFF].add(_decimal(item, ext.CLINICAL_CUTOFF))
    facts = []
    for (system, code), entry in found.items():
        agreed = {name: next(iter(values)) if len(values) == 1 else None for name, values in entry.values.items()}
        disagreements = tuple(name for name, values in entry.values.items() if len(values) > 1)
        facts.append(
            ScoreFacts(
                system=system,
                code=code,
                codings=entry.codings,
                name=entry.name,
                instrument="; ".join(entry.instruments),
                sources=tuple(entry.sources),
                direction=agreed[DIRECTION],
                reliable_change=agreed[RELIABLE_CHANGE],
                clinical_cutoff=agreed[CLINICAL_CUTOFF],
                disagreements=disagreements,
            )
        )
    return facts
