"""Synthetic demo data: people with recovery trajectories, stored through the submission path, and removed again.

Everything is generated from a seed (``random.Random``) except the dates, which count back from the day of
loading so that who is overdue stays true. Each person answers the built-in instruments every few weeks over a
year or more. The first four people are fixed personas other documents rely on:

- ``demo-01`` improves: a reliable improvement on the PHQ-9 at the latest response, and a rising QPR-15;
- ``demo-02`` reliably deteriorates on the PHQ-9 and is in its severe band at the latest response;
- ``demo-03`` answers the PHQ-9 safety item (item 9) on the latest response, raising a Flag nobody has reviewed;
- ``demo-04`` stopped completing every measure but the PHQ-9 months ago, so those measures are overdue; they have
  been asked to complete the QPR-15 again (an open Task, ``Task/demo-04-qpr-15``, with a completion link).

Every response carries the ``synthetic`` data-origin tag and an identifier in the demo's own system, so loading
twice stores nothing twice and removal finds exactly the demo responses (their Observations, Flags and
Provenance are found through them: the service does not copy the tag onto what it derives).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select

from service import audit, resources
from service.app_ui.profile import instrument_direction, is_profile_item
from service.audit import AuditContext, current_audit
from service.auth.access import Grant, Interaction
from service.fhir import jsonio
from service.fhir.dates import instant_text
from service.fhir.errors import FhirError, Gone, NotFound
from service.fhir.parse import validate_structure
from service.invitations.links import invite
from service.invitations.shape import OPEN_STATUSES
from service.invitations.tasks import delete_task, update_task
from service.responses.submit import delete_response, submit_response
from service.scoring import extensions as ext
from service.scoring import score_response
from service.services import Services
from service.store.kinds import PROVENANCE
from service.store.models import FlagRow, ObservationRow, ProvenanceRow, ProvenanceTarget, QuestionnaireResponseRow
from service.store.repository import ResourceRepository

DATA_ORIGIN = "https://recovery-proms.org/fhir/CodeSystem/data-origin"
SYNTHETIC_TAG = {"system": DATA_ORIGIN, "code": "synthetic", "display": "Synthetic demo data"}
IDENTIFIER_SYSTEM = "https://recovery-proms.org/fhir/demo-response"
INSTRUMENT_URL = "https://recovery-proms.org/fhir/Questionnaire/"  # + id: the built-in instruments' canonical
DEFAULT_SEED = 1729
DEFAULT_PATIENTS = 12
MAX_PATIENTS = 99
# Who the demo writes as: the AuditEvents of loading and removing name this client.
DEMO_CLIENT = "proms-demo"
GRANT = Grant(unrestricted=True, client_id=DEMO_CLIENT)

ANCHOR = "phq-9"  # the measure the personas are defined on
EVERYONE = (ANCHOR, "qpr-15")
OPTIONAL = ("gad-7", "k10", "core-10", "dialog", "gbo")
INSTRUMENTS = EVERYONE + OPTIONAL
LOWER_IS_BETTER = "lower-is-better"

# Days between two responses to a measure (4 to 12 weeks): the PHQ-9 more often than the longer measures.
CADENCE = {ANCHOR: (42, 70)}
DEFAULT_CADENCE = (56, 84)
SPAN_DAYS = (365, 480)  # how long a person has been completing measures (up to one more interval)
LAST_CONTACT_DAYS = (1, 20)  # days before loading of the latest contact of someone still attending
SAME_VISIT_DAYS = 6  # the latest responses to a person's measures fall within this many days of each other
STOPPED_DAYS = (100, 170)  # days before loading of the latest response to a measure a person stopped completing
MIN_RESPONSES = 3
SEVERITY_NOISE = 0.05
ITEM_NOISE = 0.08
MEASURE_BIAS = 0.05
MISSING_RATE = 0.15  # of the responses that may have missing answers (never a measure's latest two)

GIVEN_NAMES = (
    "Alex", "Sam", "Jordan", "Priya", "Tomasz", "Amara", "Niamh", "Kwame", "Mei", "Rhys", "Leila", "Callum",
    "Ines", "Dev", "Hannah", "Oluwaseun", "Freya", "Mateo", "Aisha", "Connor", "Yusuf", "Grace", "Ravi", "Eilidh",
)  # fmt: skip
FAMILY_NAMES = (
    "Morgan", "Okafor", "Nowak", "Patel", "Lindqvist", "Byrne", "Mensah", "Chen", "Evans", "Haddad", "Fraser",
    "Silva", "Kaur", "Murphy", "Adeyemi", "Walsh", "Rossi", "Hughes", "Ahmed", "Campbell", "Novak", "Reid",
)  # fmt: skip
GOALS = (
    "Sleep through the night",
    "Get back to work part-time",
    "Feel less anxious on the bus",
    "See friends at least once a week",
    "Cook a proper meal most days",
    "Manage my money without worrying",
    "Go for a walk three times a week",
    "Feel able to ask for help",
    "Drink less during the week",
    "Start a college course",
    "Spend more time with my children",
    "Get out of the house every day",
)


class DemoError(Exception):
    """The demo data cannot be generated, stored or removed (the message says why)."""


# the instruments, as the generator needs them ----------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """An item a person answers (or a group holding some)."""

    link_id: str
    text: str | None
    type: str
    required: bool
    options: tuple[tuple[float | None, dict[str, Any]], ...]  # (weight, the option's value element)
    safety: bool  # a safety flag is raised from this item
    profile: bool  # one of the instrument's profile items (strengths and priorities)
    children: tuple[Question, ...] = ()

    @property
    def weighted(self) -> bool:
        return bool(self.options) and all(weight is not None for weight, _ in self.options)

    def weights(self) -> list[float]:
        return sorted({weight for weight, _ in self.options if weight is not None})

    def option(self, weight: float) -> dict[str, Any]:
        chosen = next(value for w, value in self.options if w == weight)
        copied: dict[str, Any] = ext.json_copy(chosen)
        return copied


@dataclass(frozen=True)
class Form:
    """One instrument: its Questionnaire, its items in order, and which way its scores go."""

    questionnaire: Mapping[str, Any]
    canonical: str
    lower_is_better: bool
    questions: tuple[Question, ...]

    def walk(self) -> Iterator[Question]:
        stack = list(reversed(self.questions))
        while stack:
            question = stack.pop()
            yield question
            stack.extend(reversed(question.children))


def _option_weight(option: Mapping[str, Any]) -> float | None:
    weight = ext.embedded_weight(option)
    if weight is None:
        weight = ext.embedded_weight(option.get("valueCoding"))
    return None if weight is None else float(weight)


def _option_value(option: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in option.items() if key.startswith("value")}


def _questions(items: Any) -> tuple[Question, ...]:
    questions = []
    for item in ext.as_list(items):
        item = ext.as_mapping(item)
        if item.get("type") == "display" or item.get("readOnly") is True:
            continue  # instructions, and the scores the server calculates
        options = tuple(
            (_option_weight(ext.as_mapping(option)), _option_value(ext.as_mapping(option)))
            for option in ext.as_list(item.get("answerOption"))
        )
        questions.append(
            Question(
                link_id=str(item.get("linkId")),
                text=str(item["text"]) if item.get("text") else None,
                type=str(item.get("type")),
                required=item.get("required") is True,
                options=options,
                safety=ext.first_extension(item, ext.SAFETY_FLAG) is not None,
                profile=is_profile_item(item),
                children=_questions(item.get("item")),
            )
        )
    return tuple(questions)


def read_form(questionnaire: Mapping[str, Any]) -> Form:
    canonical = str(questionnaire.get("url"))
    if questionnaire.get("version"):
        canonical += f"|{questionnaire['version']}"
    return Form(
        questionnaire=questionnaire,
        canonical=canonical,
        lower_is_better=instrument_direction(questionnaire) == LOWER_IS_BETTER,
        questions=_questions(questionnaire.get("item")),
    )


# people and their courses -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Course:
    """How a person's difficulties change over their time span: severity 0 (well) to 1 (most unwell)."""

    persona: str
    path: tuple[tuple[float, float], ...]  # (fraction of the time span, severity), joined by straight lines
    final: tuple[float, float] | None = None  # severity at each measure's previous and latest response
    safety_on_latest: bool = False  # the latest PHQ-9 answers the safety item above its lowest option
    # The measures still completed after the person stopped the others (None: they stopped nothing).
    continues: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DemoPerson:
    patient_id: str  # the id in Patient/demo-NN
    name: str
    persona: str
    responses: tuple[dict[str, Any], ...]  # oldest first: the order they are submitted in


def _jitter(rng: random.Random, value: float, spread: float = 0.05) -> float:
    return value + rng.uniform(-spread, spread)


SEEDED_PERSONAS = ("improving", "gradual", "steady", "deteriorating", "relapse", "lapsed")


def _course(index: int, seed: int, rng: random.Random) -> Course:
    """The course of person ``index``: a fixed persona for the first four; the rest take the other personas in
    turn, in an order drawn from the seed, so that every kind of course is there from ten people on."""
    if index == 1:
        return Course("improving", ((0, 0.78), (0.5, 0.7), (0.8, 0.6)), final=(0.55, 0.2))
    if index == 2:
        return Course("deteriorating", ((0, 0.3), (0.5, 0.26), (0.8, 0.38)), final=(0.45, 0.92))
    if index == 3:
        return Course("safety", ((0, 0.6), (0.35, 0.45), (0.7, 0.55), (1, 0.58)), safety_on_latest=True)
    if index == 4:
        return Course("overdue", ((0, 0.55), (1, 0.35)), continues=(ANCHOR,))
    order = list(SEEDED_PERSONAS)
    random.Random(f"{seed}/personas").shuffle(order)
    persona = order[(index - 5) % len(order)]
    path: tuple[tuple[float, float], ...]
    if persona == "improving":
        start = rng.uniform(0.6, 0.8)
        path = ((0, start), (0.7, _jitter(rng, start - 0.12)))
        return Course(persona, path, final=(rng.uniform(0.5, 0.6), rng.uniform(0.1, 0.2)))
    if persona == "deteriorating":
        start = rng.uniform(0.2, 0.35)
        path = ((0, start), (0.8, _jitter(rng, 0.3)))
        return Course(persona, path, final=(rng.uniform(0.25, 0.32), rng.uniform(0.65, 0.75)))
    if persona == "relapse":
        path = ((0, _jitter(rng, 0.6)), (0.35, _jitter(rng, 0.3)), (0.65, _jitter(rng, 0.62)), (1, _jitter(rng, 0.35)))
        return Course(persona, path)
    if persona == "steady":
        level = rng.uniform(0.2, 0.45)
        return Course(persona, ((0, level), (1, _jitter(rng, level))))
    start = rng.uniform(0.45, 0.7)  # gradual, or lapsed: gradual until they stopped coming
    return Course(persona, ((0, start), (1, start - 0.25)), continues=() if persona == "lapsed" else None)


def _severity_at(path: Sequence[tuple[float, float]], when: float) -> float:
    if when <= path[0][0]:
        return path[0][1]
    for (u0, s0), (u1, s1) in zip(path, path[1:], strict=False):
        if when <= u1:
            return s0 + (s1 - s0) * (when - u0) / (u1 - u0)
    return path[-1][1]


@dataclass(frozen=True)
class Profile:
    """What stays the same in one person's answers to one instrument from one time to the next."""

    offsets: dict[str, float]  # how far above (or below) their overall level each item sits
    accents: frozenset[str]  # their clearest strengths and priorities, kept apart from small adjustments
    groups: frozenset[str]  # the optional groups they fill in (e.g. a second and third goal)
    texts: dict[str, str]  # their answers to text items (e.g. the wording of their goals)


def _profile(form: Form, rng: random.Random) -> Profile:
    weighted = [q for q in form.walk() if q.weighted and not q.safety]
    offsets = {q.link_id: rng.gauss(0, 0.12) for q in weighted}
    accents: set[str] = set()
    profile_items = [q.link_id for q in weighted if q.profile]
    if len(profile_items) >= 6:
        # Two clear strengths and two clear priorities, as people usually have: the favourable end is the
        # high end of the scale for these instruments (QPR, DIALOG) and the low end for symptom measures.
        chosen = rng.sample(profile_items, 4)
        sign = -1.0 if form.lower_is_better else 1.0
        for link_id in chosen[:2]:
            offsets[link_id] = sign * 0.3
        for link_id in chosen[2:]:
            offsets[link_id] = -sign * 0.5
        accents.update(chosen)
    if offsets:
        mean = sum(offsets.values()) / len(offsets)
        offsets = {key: value - mean for key, value in offsets.items()}
    optional_groups = [q.link_id for q in form.questions if q.type == "group" and not q.required]
    groups = frozenset(optional_groups[: rng.randint(0, len(optional_groups))])
    strings = [q.link_id for q in _answered(form.questions, groups) if q.type == "string"]
    texts = dict(zip(strings, rng.sample(GOALS, len(strings)), strict=True))
    return Profile(offsets, frozenset(accents), groups, texts)


def _answered_here(questions: Sequence[Question], groups: frozenset[str]) -> Iterator[Question]:
    """The questions a person answers at one level of the item tree: required groups and the optional ones they
    fill in, and every question but free text (left blank)."""
    for question in questions:
        if question.type == "group":
            if question.required or question.link_id in groups:
                yield question
        elif question.required or question.type != "text":
            yield question


def _answered(questions: Sequence[Question], groups: frozenset[str]) -> Iterator[Question]:
    for question in _answered_here(questions, groups):
        yield question
        yield from _answered(question.children, groups)


# answers ------------------------------------------------------------------------------------------------------


def _clip(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return min(high, max(low, value))


def _fit(
    chosen: dict[str, float],
    wanted: Mapping[str, float],
    scales: Mapping[str, list[float]],
    target: float,
    keep: frozenset[str],
) -> None:
    """Move answers one option at a time until their weights add up to ``target``, each time the answer
    furthest from where the person would put it, and the answers in ``keep`` only when nothing else can move."""
    order = {key: index for index, key in enumerate(chosen)}
    total = sum(chosen.values())
    for _ in range(sum(len(scale) for scale in scales.values())):
        if total == target:
            return
        up = total < target
        movable = []
        for key, weight in chosen.items():
            scale = scales[key]
            position = scale.index(weight) + (1 if up else -1)
            if 0 <= position < len(scale):
                lag = wanted[key] - weight if up else weight - wanted[key]
                movable.append(((key in keep, -lag, order[key]), key, scale[position]))
        if not movable:
            return
        _, key, weight = min(movable)
        if (total + weight - chosen[key] > target) if up else (total + weight - chosen[key] < target):
            return  # a step would overshoot (only with unevenly spaced weights)
        total += weight - chosen[key]
        chosen[key] = weight


def _nearest(scale: Sequence[float], value: float) -> float:
    return min(scale, key=lambda weight: (abs(weight - value), weight))


def _choose(form: Form, profile: Profile, level: float, rng: random.Random, *, safety: bool) -> dict[str, float]:
    """The weight of each weighted answer: ``level`` (0..1) is how far up their scales the person is overall."""
    answered = [q for q in _answered(form.questions, profile.groups) if q.weighted]
    scales = {q.link_id: q.weights() for q in answered}
    chosen: dict[str, float] = {}
    wanted: dict[str, float] = {}
    for question in answered:
        scale = scales[question.link_id]
        if question.safety:
            chosen[question.link_id] = scale[1] if safety and len(scale) > 1 else scale[0]
            continue
        offset = profile.offsets.get(question.link_id, 0.0) + rng.gauss(0, ITEM_NOISE)
        wanted[question.link_id] = scale[0] + _clip(level + offset) * (scale[-1] - scale[0])
        chosen[question.link_id] = _nearest(scale, wanted[question.link_id])
    free = {key: weight for key, weight in chosen.items() if key in wanted}
    low = sum(scales[key][0] for key in free)
    high = sum(scales[key][-1] for key in free)
    _fit(free, wanted, scales, low + int(level * (high - low) + 0.5), profile.accents)
    chosen.update(free)
    return chosen


def _items(
    questions: Sequence[Question], profile: Profile, weights: Mapping[str, float], level: float
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for question in _answered_here(questions, profile.groups):
        item: dict[str, Any] = {"linkId": question.link_id}
        if question.text:
            item["text"] = question.text
        if question.type == "group":
            item["item"] = _items(question.children, profile, weights, level)
        elif question.type == "string":
            item["answer"] = [{"valueString": profile.texts[question.link_id]}]
        elif question.weighted:
            item["answer"] = [question.option(weights[question.link_id])]
        elif question.options:
            # Unweighted options (e.g. how difficult the problems made things) follow the person's level.
            values = [value for _, value in question.options]
            item["answer"] = [ext.json_copy(values[int(_clip(level) * (len(values) - 1) + 0.5)])]
        else:
            continue
        items.append(item)
    return items


def _with_missing_answers(form: Form, response: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Leave out one or two answers where the instrument's missing-item rule still gives every score.

    Which answers may be missing is what scoring the response says, not a copy of each instrument's rule: an
    answer stays out only if every score that had a value with it still has one without it.
    """
    scored = {s.link_id for s in score_response(form.questionnaire, response).scores if s.value is not None}
    candidates = [q.link_id for q in form.questions if q.weighted and not q.required and not q.safety]
    rng.shuffle(candidates)
    wanted = rng.choice((1, 1, 2))
    left_out: set[str] = set()
    for link_id in candidates:
        if len(left_out) == wanted:
            break
        trial = {**response, "item": [i for i in response["item"] if i["linkId"] not in left_out | {link_id}]}
        still = {s.link_id for s in score_response(form.questionnaire, trial).scores if s.value is not None}
        if scored <= still:
            left_out.add(link_id)
            response = trial
    return response


def _response_days(latest: int, first: int, cadence: tuple[int, int], rng: random.Random) -> list[int]:
    """Days before loading of each response to one measure, newest first, back to the person's first contact."""
    days = [latest]
    while days[-1] <= first or len(days) < MIN_RESPONSES:
        days.append(days[-1] + rng.randint(*cadence))
    return days


def _authored(today: date, days_ago: int, rng: random.Random) -> str:
    moment = datetime.combine(today - timedelta(days=days_ago), time(rng.randint(8, 18), rng.randrange(0, 60, 5)))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _person(index: int, forms: Mapping[str, Form], today: date, seed: int) -> DemoPerson:
    rng = random.Random(f"{seed}/{index}")  # each person from their own stream: the same whatever the count
    patient_id = f"demo-{index:02d}"
    name = f"{rng.choice(GIVEN_NAMES)} {rng.choice(FAMILY_NAMES)}"
    course = _course(index, seed, rng)
    extras = rng.sample(OPTIONAL, rng.choice((0, 1, 1, 2)))
    measures = EVERYONE + tuple(slug for slug in OPTIONAL if slug in extras)
    lapsed = course.continues == ()
    last_contact = rng.randint(*(STOPPED_DAYS if lapsed else LAST_CONTACT_DAYS))
    first = last_contact + rng.randint(*SPAN_DAYS)
    subject = {"reference": f"Patient/{patient_id}", "display": name}
    dated: list[tuple[str, int, dict[str, Any]]] = []
    for slug in measures:
        form = forms[slug]
        profile = _profile(form, rng)
        bias = 0.0 if slug == ANCHOR else rng.uniform(-MEASURE_BIAS, MEASURE_BIAS)
        stopped = course.continues is not None and slug not in course.continues
        if stopped and not lapsed:
            latest = rng.randint(*STOPPED_DAYS)
        else:
            latest = last_contact + rng.randint(0, SAME_VISIT_DAYS)
        days = list(reversed(_response_days(latest, first, CADENCE.get(slug, DEFAULT_CADENCE), rng)))
        for number, days_ago in enumerate(days, start=1):
            from_end = len(days) - number  # 0: the latest response, 1: the one before
            severity = _severity_at(course.path, (first - days_ago) / (first - last_contact))
            severity += rng.gauss(0, SEVERITY_NOISE)
            if course.final is not None and not stopped and from_end < 2:
                severity = course.final[1 - from_end]
            level = _clip(severity + bias, 0.02, 0.98)
            level = level if form.lower_is_better else 1 - level
            safety = course.safety_on_latest and slug == ANCHOR and from_end == 0
            weights = _choose(form, profile, level, rng, safety=safety)
            authored = _authored(today, days_ago, rng)
            response: dict[str, Any] = {
                "resourceType": "QuestionnaireResponse",
                "meta": {"tag": [dict(SYNTHETIC_TAG)]},
                "identifier": {"system": IDENTIFIER_SYSTEM, "value": f"{patient_id}-{slug}-{number:02d}"},
                "questionnaire": form.canonical,
                "status": "completed",
                "subject": dict(subject),
                "authored": authored,
                "author": dict(subject),  # self-reported
                "item": _items(form.questions, profile, weights, level),
            }
            if from_end >= 2 and rng.random() < MISSING_RATE:
                response = _with_missing_answers(form, response, rng)
            dated.append((authored, INSTRUMENTS.index(slug), response))
    dated.sort(key=lambda entry: (entry[0], entry[1]))
    return DemoPerson(patient_id, name, course.persona, tuple(response for _, _, response in dated))


def generate_people(
    questionnaires: Mapping[str, Mapping[str, Any]],
    *,
    today: date,
    patients: int = DEFAULT_PATIENTS,
    seed: int = DEFAULT_SEED,
) -> list[DemoPerson]:
    """``patients`` synthetic people (pure): ``questionnaires`` are the instruments by id (``phq-9``, ...)."""
    if not 1 <= patients <= MAX_PATIENTS:
        raise DemoError(f"The demo has 1 to {MAX_PATIENTS} people, not {patients}")
    missing = [slug for slug in INSTRUMENTS if slug not in questionnaires]
    if missing:
        raise DemoError(
            f"The demo needs the built-in questionnaires {', '.join(missing)}: run `proms questionnaires load` first"
        )
    forms = {slug: read_form(questionnaires[slug]) for slug in INSTRUMENTS}
    return [_person(index, forms, today, seed) for index in range(1, patients + 1)]


# storing and removing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoCounts:
    """The demo data as stored: people, responses and what the service derived from them."""

    people: int
    responses: int
    observations: int
    flags: int
    provenance: int


@dataclass(frozen=True)
class LoadReport:
    created: int  # responses stored now
    existing: int  # responses already stored by an earlier load
    counts: DemoCounts
    invitation: str | None = None  # the completion link made for the person with an open request


@contextmanager
def _audited(interaction: Interaction) -> Iterator[None]:
    """Audit the writes inside as the API audits a request (the AuditEvent commits with each write)."""
    token = current_audit.set(AuditContext(interaction, address=None, query=None, grant=GRANT))
    try:
        yield
    finally:
        current_audit.reset(token)


def stored_instruments(services: Services) -> dict[str, dict[str, Any]]:
    """The active built-in instruments the demo answers, as stored (the latest version of each), by id."""
    found: dict[str, dict[str, Any]] = {}
    for slug in INSTRUMENTS:
        pairs = [("url", INSTRUMENT_URL + slug), ("status", "active"), ("_sort", "-_lastUpdated"), ("_count", "1")]
        search = resources.parse_search(services, "Questionnaire", pairs, strict=True)
        result = resources.search(services, "Questionnaire", search, GRANT)
        if result.matches:
            found[slug] = jsonio.loads_object(result.matches[0][1])
    return found


def load_people(services: Services, people: Sequence[DemoPerson]) -> LoadReport:
    """Submit every response as POST /fhir/QuestionnaireResponse does, each person's in chronological order
    (reliable change compares with the previous response when a response is submitted)."""
    created = existing = 0
    for person in people:
        for response in person.responses:
            try:
                validate_structure(response, "QuestionnaireResponse")
                with _audited(Interaction("create", "QuestionnaireResponse")):
                    result = submit_response(services, ext.json_copy(response), GRANT)
            except FhirError as exc:
                raise DemoError(f"Demo response {response['identifier']['value']} was refused: {exc}") from exc
            if result.existing:
                existing += 1
            else:
                created += 1
    return LoadReport(created, existing, demo_counts(services))


def load_demo(services: Services, *, today: date, patients: int = DEFAULT_PATIENTS) -> LoadReport:
    """Generate the demo people from the stored instruments and store their responses (idempotent); then ask
    demo-04 to complete the QPR-15 again, with a completion link."""
    questionnaires = stored_instruments(services)
    report = load_people(services, generate_people(questionnaires, today=today, patients=patients))
    invitation = invite_to_answer(services, questionnaires, today) if patients >= INVITED_INDEX else None
    return replace(report, invitation=invitation)


INVITED_INDEX = 4  # demo-04
INVITED_TASK = "demo-04-qpr-15"
SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"


def invite_to_answer(services: Services, questionnaires: Mapping[str, dict[str, Any]], today: date) -> str | None:
    """An open Task asking demo-04 to complete the QPR-15, and a new completion link to it (the previous link stops
    working). None when the Task was answered or closed meanwhile: it is not reopened."""
    qpr = questionnaires.get("qpr-15")
    if qpr is None:
        return None
    try:
        current = resources.read(services, "Task", INVITED_TASK, GRANT).resource()
    except (NotFound, Gone):
        current = None
    if current is not None and current.get("status") not in OPEN_STATUSES:
        return None
    if current is None:
        asked = datetime.combine(today - timedelta(days=5), time(9, 30))
        task = {
            "resourceType": "Task",
            "meta": {"tag": [SYNTHETIC_TAG]},
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": SDC_TEMP, "code": "complete-questionnaire"}]},
            "for": {"reference": f"Patient/demo-{INVITED_INDEX:02d}"},
            "requester": {"display": "Community mental health team (demo)"},
            "authoredOn": instant_text(asked),
            "restriction": {
                "period": {"start": asked.date().isoformat(), "end": (today + timedelta(days=9)).isoformat()}
            },
            "input": [
                {
                    "type": {"coding": [{"system": SDC_TEMP, "code": "questionnaire"}]},
                    "valueCanonical": f"{qpr['url']}|{qpr['version']}",
                }
            ],
        }
        with _audited(Interaction("update", "Task", INVITED_TASK)):
            update_task(services, INVITED_TASK, {**task, "id": INVITED_TASK}, GRANT, if_match=None)
    with _audited(Interaction("operation-invite", "Task", INVITED_TASK)):
        return invite(services, INVITED_TASK, GRANT).url


QR = QuestionnaireResponseRow


def _demo_response_ids() -> Select[str]:
    """Every demo response, deleted ones included (what was derived from them may still stand)."""
    return select(QR.id).where(QR.identifier_system == IDENTIFIER_SYSTEM)


def _live_demo_responses() -> tuple[ColumnElement[bool], ...]:
    return QR.identifier_system == IDENTIFIER_SYSTEM, QR.deleted.is_(False)


def _demo_provenance() -> Select[ProvenanceRow]:
    targets = select(ProvenanceTarget.provenance_pk).where(
        ProvenanceTarget.target_type == "QuestionnaireResponse", ProvenanceTarget.target_id.in_(_demo_response_ids())
    )
    return select(ProvenanceRow).where(ProvenanceRow.pk.in_(targets), ProvenanceRow.deleted.is_(False))


def demo_counts(services: Services) -> DemoCounts:
    """What of the demo is stored now (live resources only)."""
    with services.db.read_session() as session:
        people = session.scalar(select(func.count(func.distinct(QR.subject_id))).where(*_live_demo_responses()))
        responses = session.scalar(select(func.count()).select_from(QR).where(*_live_demo_responses()))
        observations = session.scalar(
            select(func.count())
            .select_from(ObservationRow)
            .where(ObservationRow.derived_from_id.in_(_demo_response_ids()), ObservationRow.deleted.is_(False))
        )
        flags = session.scalar(
            select(func.count())
            .select_from(FlagRow)
            .where(FlagRow.derived_from_id.in_(_demo_response_ids()), FlagRow.deleted.is_(False))
        )
        provenance = session.scalar(select(func.count()).select_from(_demo_provenance().subquery()))
    return DemoCounts(people or 0, responses or 0, observations or 0, flags or 0, provenance or 0)


@dataclass(frozen=True)
class DemoPatient:
    patient_id: str
    name: str | None


def demo_patients(services: Services) -> list[DemoPatient]:
    """The demo people stored now, by id, with the name their responses carry (for the development launcher)."""
    first = (
        select(QR.subject_id, func.min(QR.pk).label("pk"))
        .where(*_live_demo_responses(), QR.subject_type == "Patient", QR.subject_id.is_not(None))
        .group_by(QR.subject_id)
        .subquery()
    )
    with services.db.read_session() as session:
        rows = session.execute(
            select(first.c.subject_id, QR.resource_json).join(QR, QR.pk == first.c.pk).order_by(first.c.subject_id)
        ).all()
    people = []
    for subject_id, resource_json in rows:
        subject = jsonio.loads_object(resource_json.encode()).get("subject") if resource_json else None
        display = subject.get("display") if isinstance(subject, dict) else None
        people.append(DemoPatient(str(subject_id), display if isinstance(display, str) else None))
    return people


def remove_demo(services: Services) -> DemoCounts:
    """Delete every demo response as DELETE /fhir/QuestionnaireResponse/{id} does (its Observations and Flags
    are deleted with it; history is kept, as for every deletion), the Provenance of each, and demo-04's Task.
    Nothing else is touched. Returns what was removed."""
    removed = demo_counts(services)
    # The Provenance of every demo response, deleted ones included: deleting a response leaves its Provenance.
    with services.db.transaction() as session, _audited(Interaction("delete", "Provenance")):
        repository = ResourceRepository(session, PROVENANCE)
        rows = list(session.scalars(_demo_provenance().order_by(ProvenanceRow.pk)))
        for row in rows:
            repository.delete(row)
            audit.note("Provenance", row.id, None)
        if rows:
            audit.write_in_transaction(session, 200)
    with services.db.read_session() as session:
        response_ids = list(session.scalars(select(QR.id).where(*_live_demo_responses()).order_by(QR.pk)))
    for response_id in response_ids:
        with _audited(Interaction("delete", "QuestionnaireResponse", response_id)):
            delete_response(services, response_id, GRANT)
    with _audited(Interaction("delete", "Task", INVITED_TASK)):
        try:
            delete_task(services, INVITED_TASK, GRANT)
        except NotFound:
            pass  # never made (fewer people), or removed already
    return removed
