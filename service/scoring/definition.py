"""A Questionnaire read once for scoring: its items, expressions (parsed), units and lookups, cached by content."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.fhir.memo import PerObject, json_default
from service.scoring import extensions as ext
from service.scoring.fhirpath import CompiledExpression, compile_expression
from service.scoring.functions import FhirPathError
from service.scoring.weights import OptionCache, Terminology

FHIRPATH = "text/fhirpath"
_CACHE_SIZE = 128


@dataclass(frozen=True)
class ExpressionDef:
    """One Expression found in the Questionnaire; ``compiled`` is None when ``error`` says why."""

    kind: str  # variable | calculatedExpression | safety-flag | initialExpression | ...
    name: str | None
    language: str | None
    text: str
    path: str  # FHIRPath to the extension in the Questionnaire
    link_id: str | None
    compiled: CompiledExpression | None
    error: str | None


@dataclass(frozen=True)
class FlagDef:
    condition: ExpressionDef
    message: str | None


@dataclass(frozen=True)
class ItemDef:
    link_id: str
    type: str
    text: str | None
    codes: tuple[Mapping[str, Any], ...]
    repeats: bool
    source: Mapping[str, Any]  # the Questionnaire item (%qitem)
    path: str
    variables: tuple[ExpressionDef, ...]
    calculated: ExpressionDef | None
    flags: tuple[FlagDef, ...]
    unit: Mapping[str, Any] | None
    children: tuple[ItemDef, ...]
    holds_calculation: bool  # this item or one below it has a calculatedExpression
    holds_flag: bool  # this item or one below it has a safety flag
    child_index: Mapping[str, ItemDef]  # ``children`` by linkId (the last one, should a linkId repeat)


@dataclass(frozen=True)
class QuestionnaireDefinition:
    source: Mapping[str, Any]  # a private copy of the Questionnaire (%questionnaire)
    variables: tuple[ExpressionDef, ...]
    flags: tuple[FlagDef, ...]
    items: tuple[ItemDef, ...]
    item_index: Mapping[str, ItemDef]  # ``items`` by linkId (the last one, should a linkId repeat)
    by_link_id: Mapping[str, ItemDef]
    q_items: Mapping[str, Mapping[str, Any]]
    contained: Terminology
    expressions: tuple[ExpressionDef, ...]  # every Expression, in document order
    # The answer options coded answers pick, filled in as responses are scored (see AnswerWeights).
    options: OptionCache = field(default_factory=dict, compare=False, repr=False)
    # What scoring reads off the Questionnaire on first use and keeps with it (e.g. a score's bands).
    readings: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def calculated(self) -> Iterator[ItemDef]:
        """Items with a calculatedExpression, in Questionnaire order."""
        return iter(self.calculated_items)

    @functools.cached_property
    def calculated_items(self) -> tuple[ItemDef, ...]:
        return tuple(item for item in self.walk() if item.calculated is not None)

    @functools.cached_property
    def has_flags(self) -> bool:
        """Whether a safety flag is defined anywhere."""
        return bool(self.flags) or any(item.flags for item in self.walk())

    @functools.cached_property
    def calculated_link_ids(self) -> frozenset[str]:
        """The linkIds whose (first) item has a calculatedExpression."""
        return frozenset(link_id for link_id, item in self.by_link_id.items() if item.calculated is not None)

    def walk(self) -> Iterator[ItemDef]:
        def visit(items: tuple[ItemDef, ...]) -> Iterator[ItemDef]:
            for item in items:
                yield item
                yield from visit(item.children)

        return visit(self.items)


def _sibling_index(items: tuple[ItemDef, ...]) -> Mapping[str, ItemDef]:
    """Items by linkId, as a walk of the response finds them among siblings (the last one wins)."""
    return {item.link_id: item for item in items}


def _compile(text: str, language: str | None) -> tuple[CompiledExpression | None, str | None]:
    if language != FHIRPATH:
        return None, f"language {language!r} is not evaluated by this service (only {FHIRPATH})"
    try:
        return compile_expression(text), None
    except FhirPathError as exc:
        return None, str(exc)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _expression(kind: str, value: Any, path: str, link_id: str | None) -> ExpressionDef:
    value = ext.as_mapping(value)
    text, language, name = _text(value.get("expression")), _text(value.get("language")), _text(value.get("name"))
    if text is None:
        return ExpressionDef(kind, name, language, "", path, link_id, None, "no expression")
    compiled, error = _compile(text, language)
    return ExpressionDef(kind, name, language, text, path, link_id, compiled, error)


class _Reader:
    def __init__(self) -> None:
        self.expressions: list[ExpressionDef] = []
        self.by_link_id: dict[str, ItemDef] = {}
        self.q_items: dict[str, Mapping[str, Any]] = {}

    def element(
        self, element: Mapping[str, Any], path: str, link_id: str | None
    ) -> tuple[tuple[ExpressionDef, ...], ExpressionDef | None, tuple[FlagDef, ...]]:
        variables: list[ExpressionDef] = []
        calculated: ExpressionDef | None = None
        flags: list[FlagDef] = []
        for index, extension in enumerate(ext.as_list(element.get("extension"))):
            url = extension.get("url") if isinstance(extension, Mapping) else None
            if not isinstance(url, str):
                continue
            here = f"{path}.extension[{index}]"
            if url in ext.EXPRESSION_EXTENSIONS:
                found = _expression(ext.EXPRESSION_EXTENSIONS[url], extension.get("valueExpression"), here, link_id)
                self.expressions.append(found)
                if url == ext.VARIABLE:
                    variables.append(found)
                elif url == ext.CALCULATED_EXPRESSION and calculated is None:
                    calculated = found
            elif url == ext.SAFETY_FLAG:
                condition = _expression(
                    "safety-flag", ext.sub_extension_value(extension, "condition", "valueExpression"), here, link_id
                )
                self.expressions.append(condition)
                message = ext.sub_extension_value(extension, "message", "valueString")
                flags.append(FlagDef(condition, message if isinstance(message, str) and message else None))
        return tuple(variables), calculated, tuple(flags)

    def items(self, items: Any, path: str) -> tuple[ItemDef, ...]:
        result = []
        for index, item in enumerate(ext.as_list(items)):
            if not isinstance(item, Mapping) or not isinstance(item.get("linkId"), str):
                continue
            here = f"{path}.item[{index}]"
            link_id = item["linkId"]
            variables, calculated, flags = self.element(item, here, link_id)
            children = self.items(item.get("item"), here)
            unit = ext.first_extension(item, ext.QUESTIONNAIRE_UNIT)
            definition = ItemDef(
                link_id=link_id,
                type=str(item.get("type", "")),
                text=item.get("text") if isinstance(item.get("text"), str) else None,
                codes=tuple(code for code in ext.as_list(item.get("code")) if isinstance(code, Mapping)),
                repeats=item.get("repeats") is True,
                source=item,
                path=here,
                variables=variables,
                calculated=calculated,
                flags=flags,
                unit=ext.as_mapping(unit.get("valueCoding")) if unit is not None else None,
                children=children,
                holds_calculation=calculated is not None or any(c.holds_calculation for c in children),
                holds_flag=bool(flags) or any(c.holds_flag for c in children),
                child_index=_sibling_index(children),
            )
            self.by_link_id.setdefault(link_id, definition)
            self.q_items.setdefault(link_id, item)
            result.append(definition)
        return tuple(result)


def read_definition(questionnaire: Mapping[str, Any]) -> QuestionnaireDefinition:
    """Read ``questionnaire`` (a private copy: the engine must never see the caller's objects)."""
    reader = _Reader()
    variables, _, flags = reader.element(questionnaire, "Questionnaire", None)
    items = reader.items(questionnaire.get("item"), "Questionnaire")
    return QuestionnaireDefinition(
        source=questionnaire,
        variables=variables,
        flags=flags,
        items=items,
        item_index=_sibling_index(items),
        by_link_id=reader.by_link_id,
        q_items=reader.q_items,
        contained=Terminology(ext.as_list(questionnaire.get("contained"))),
        expressions=tuple(reader.expressions),
    )


_cache: OrderedDict[bytes, QuestionnaireDefinition] = OrderedDict()
_lock = threading.Lock()


def definition_for(questionnaire: Mapping[str, Any]) -> QuestionnaireDefinition:
    """The definition of ``questionnaire``, read once per content (so once per ``url|version`` in practice).

    Keyed by a digest of the content rather than by ``url|version``: a draft may change under the same
    version, and a stale cached definition would score with the wrong rules. Callers usually pass the
    same object again (a parsed Questionnaire they keep): then it is found by identity, its content compared,
    which is cheaper than the digest and as exact.
    """
    return _by_object(questionnaire)


def _definition_by_content(questionnaire: Mapping[str, Any]) -> QuestionnaireDefinition:
    dumped = orjson.dumps(questionnaire, option=orjson.OPT_SORT_KEYS, default=json_default)
    key = hashlib.blake2b(dumped, digest_size=20).digest()
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
    definition = read_definition(orjson.loads(dumped))
    with _lock:
        _cache[key] = definition
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return definition


_by_object = PerObject(_definition_by_content, _CACHE_SIZE)
