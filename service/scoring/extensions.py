"""The extension URLs scoring reads (SDC, FHIR core and the project's own), and reading FHIR JSON defensively.

Scoring never assumes the JSON it is given has the right shape (a list where FHIR has a list, an
object where FHIR has an object): what does not fit is treated as absent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import orjson

SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
CORE = "http://hl7.org/fhir/StructureDefinition/"
PROJECT = "https://recovery-proms.org/fhir/StructureDefinition/"

CALCULATED_EXPRESSION = SDC + "sdc-questionnaire-calculatedExpression"
VARIABLE = CORE + "variable"
ITEM_WEIGHT = CORE + "itemWeight"
ORDINAL_VALUE = CORE + "ordinalValue"  # the R4 name of itemWeight, still common in published forms
QUESTIONNAIRE_UNIT = CORE + "questionnaire-unit"
MIN_VALUE = CORE + "minValue"
MAX_VALUE = CORE + "maxValue"
MAX_DECIMAL_PLACES = CORE + "maxDecimalPlaces"
REGEX = CORE + "regex"  # a pattern answers must match (validation applies it; the check reads it too)
ITEM_WEIGHT_PROPERTY = "http://hl7.org/fhir/concept-properties#itemWeight"

SCORE_BAND = PROJECT + "score-band"
SCORE_DIRECTION = PROJECT + "score-direction"
RELIABLE_CHANGE = PROJECT + "reliable-change"
CLINICAL_CUTOFF = PROJECT + "clinical-cutoff"
MINIMAL_IMPORTANT_DIFFERENCE = PROJECT + "minimal-important-difference"
SAFETY_FLAG = PROJECT + "safety-flag"
SCORE_MINIMUM_ANSWERS = PROJECT + "score-minimum-answers"

# Every SDC extension whose value is an Expression, for the `check` listing (only some are evaluated here).
EXPRESSION_EXTENSIONS = {
    VARIABLE: "variable",
    CALCULATED_EXPRESSION: "calculatedExpression",
    SDC + "sdc-questionnaire-initialExpression": "initialExpression",
    SDC + "sdc-questionnaire-enableWhenExpression": "enableWhenExpression",
    SDC + "sdc-questionnaire-answerExpression": "answerExpression",
    SDC + "sdc-questionnaire-candidateExpression": "candidateExpression",
    SDC + "sdc-questionnaire-contextExpression": "contextExpression",
    SDC + "sdc-questionnaire-itemPopulationContext": "itemPopulationContext",
    SDC + "sdc-questionnaire-itemExtractionContext": "itemExtractionContext",
}

WEIGHT_EXTENSIONS = (ITEM_WEIGHT, ORDINAL_VALUE)


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def json_copy(value: Any) -> Any:
    """A private copy of FHIR JSON for the engine to read (and calculation to write): the caller's
    objects are never touched. Objects become dicts with string keys, arrays become lists."""
    # Plain JSON (the usual case) is copied by orjson, several times faster; the copy is kept only when it
    # equals the original, which rules out everything orjson would convert (tuples, NaN, UUIDs, enums...).
    # Subclasses, dates and the like are handed to _not_plain, which sends them the long way round.
    try:
        copied = orjson.loads(orjson.dumps(value, option=_PASSTHROUGH, default=_not_plain))
    except (TypeError, ValueError):
        copied = _NOT_COPIED
    if copied is not _NOT_COPIED and copied == value:
        return copied
    return _copy(value)


_PASSTHROUGH = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_NOT_COPIED = object()


def _not_plain(value: Any) -> Any:
    raise TypeError("not plain JSON")


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item) for item in value]
    return value


def extensions(element: Mapping[str, Any] | None, url: str) -> Iterator[Mapping[str, Any]]:
    """The extensions of ``element`` with ``url``, in document order."""
    if not isinstance(element, Mapping):
        return
    for extension in as_list(element.get("extension")):
        if isinstance(extension, Mapping) and extension.get("url") == url:
            yield extension


def first_extension(element: Mapping[str, Any] | None, url: str) -> Mapping[str, Any] | None:
    return next(extensions(element, url), None)


def sub_extension_value(extension: Mapping[str, Any], url: str, value_key: str) -> Any:
    """The ``value_key`` of the first sub-extension of a complex extension named ``url``."""
    sub = first_extension(extension, url)
    return None if sub is None else sub.get(value_key)


def to_number(value: Any) -> int | Decimal | None:
    """A JSON number as FHIRPath sees it: int when integral, Decimal otherwise (never a binary float)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            return None
        return int(number) if number == number.to_integral_value() else number
    return None


def embedded_weight(element: Any) -> int | Decimal | None:
    """The weight carried directly by an element: its first ``itemWeight`` or ``ordinalValue`` extension.

    Both names are read on every element (as fhirpath.js does): forms in the wild use the R4
    ``ordinalValue`` long after R5 renamed it ``itemWeight``.
    """
    if type(element) is dict:
        if "extension" not in element:  # the usual case, answered without the general checks
            return None
    elif not isinstance(element, Mapping):
        return None
    for extension in as_list(element.get("extension")):
        if isinstance(extension, Mapping) and extension.get("url") in WEIGHT_EXTENSIONS:
            weight = to_number(extension.get("valueDecimal", extension.get("valueInteger")))
            if weight is not None:
                return weight
    return None
