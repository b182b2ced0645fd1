"""Search request parsing: FHIR search parameters and result parameters, by type, into plain data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.fhir.dates import InvalidDate, date_range
from service.fhir.errors import BadRequest
from service.fhir.issues import Issue

DATE_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb")
STRING_MODIFIERS = ("exact", "contains")
# Parameters that shape the result rather than select resources.
RESULT_PARAMETERS = ("_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_page")
# Parameters every FHIR server may see and that change nothing here.
IGNORED_PARAMETERS = ("_format", "_pretty")


@dataclass(frozen=True, slots=True)
class SearchParamDef:
    name: str
    type: str  # token | reference | date | string | uri
    description: str
    target: str | None = None  # the resource type a reference parameter points at, when fixed


@dataclass(frozen=True, slots=True)
class TokenValue:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code in the system


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    resource_type: str | None
    id: str


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: str
    low: datetime
    high: datetime


@dataclass(frozen=True, slots=True)
class CanonicalValue:
    url: str
    version: str | None


SearchValue = TokenValue | ReferenceValue | DateValue | CanonicalValue | str


@dataclass(frozen=True, slots=True)
class Criterion:
    """One occurrence of a parameter: its values are alternatives (OR); criteria are combined with AND."""

    param: SearchParamDef
    modifier: str | None
    values: tuple[SearchValue, ...]


@dataclass(slots=True)
class SearchRequest:
    criteria: list[Criterion] = field(default_factory=list)
    count: int = 20
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (parameter, descending)
    include: list[str] = field(default_factory=list)
    revinclude: list[str] = field(default_factory=list)
    summary_count: bool = False
    elements: list[str] | None = None
    page: str | None = None
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchCapabilities:
    """What one resource type can be searched by: the CapabilityStatement is built from this too."""

    params: Mapping[str, SearchParamDef]
    sorts: Sequence[str]
    includes: Sequence[str] = ()
    revincludes: Sequence[str] = ()


def _split_escaped(text: str, separator: str) -> list[str]:
    """Split on separator, honouring FHIR's backslash escaping (\\, \\| \\$ \\\\)."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def parse_reference(text: str, base_url: str, target: str | None) -> ReferenceValue:
    value = text.strip()
    if base_url and value.startswith(base_url + "/"):
        value = value[len(base_url) + 1 :]
    if "/" in value:
        resource_type, _, ident = value.rpartition("/")
        resource_type = resource_type.rsplit("/", 1)[-1]
        if "_history" in value:
            raise BadRequest(f"Version-specific references are not searchable: {text!r}")
        return ReferenceValue(resource_type, ident)
    return ReferenceValue(target, value)


def _parse_value(param: SearchParamDef, modifier: str | None, raw: str, base_url: str) -> SearchValue:
    if raw == "":
        raise BadRequest(f"Search parameter '{param.name}' has an empty value", code="value")
    if param.type == "token":
        if "|" in raw:
            system, _, code = raw.partition("|")
            return TokenValue(system, code or None)
        return TokenValue(None, raw)
    if param.type == "reference":
        return parse_reference(raw, base_url, param.target)
    if param.type == "canonical":
        url, _, version = raw.partition("|")
        return CanonicalValue(url, version or None)
    if param.type == "date":
        prefix = raw[:2] if raw[:2] in DATE_PREFIXES else "eq"
        text = raw[2:] if raw[:2] in DATE_PREFIXES else raw
        if raw[:2].isalpha() and raw[:2] not in DATE_PREFIXES:
            raise BadRequest(
                f"Search parameter '{param.name}': unsupported prefix {raw[:2]!r} "
                f"(supported: {', '.join(DATE_PREFIXES)})",
                code="not-supported",
            )
        try:
            low, high = date_range(text)
        except InvalidDate as exc:
            raise BadRequest(f"Search parameter '{param.name}': {exc}", code="value") from None
        return DateValue(prefix, low, high)
    return raw


def _modifiers_for(param: SearchParamDef) -> tuple[str, ...]:
    if param.type == "string":
        return STRING_MODIFIERS
    if param.type == "token":
        return ("not",)
    return ()


def parse_search(
    pairs: Iterable[tuple[str, str]],
    capabilities: SearchCapabilities,
    *,
    base_url: str,
    default_count: int,
    max_count: int,
    strict: bool,
) -> SearchRequest:
    """Parse query pairs. Unknown parameters raise in strict mode and are listed in ``ignored`` otherwise."""
    request = SearchRequest(count=default_count)
    for key, raw in pairs:
        if "\x00" in key or "\x00" in raw:
            # No value holds it (PostgreSQL text cannot even be compared with it): refused on every database.
            shown = key.replace("\x00", "\\0")
            raise BadRequest(
                f"Search parameter '{shown}' contains the character U+0000 (NUL), which no FHIR value holds",
                code="value",
            )
        name, _, modifier_text = key.partition(":")
        modifier = modifier_text or None
        if name in IGNORED_PARAMETERS:
            continue
        if name == "_count":
            try:
                count = int(raw)
            except ValueError:
                raise BadRequest(f"_count must be a whole number, got {raw!r}", code="value") from None
            if count < 0:
                raise BadRequest("_count must not be negative", code="value")
            request.count = min(count, max_count)
        elif name == "_sort":
            request.sort = []
            for item in raw.split(","):
                descending = item.startswith("-")
                key_name = item.lstrip("-")
                if key_name not in capabilities.sorts:
                    raise BadRequest(
                        f"Cannot sort by {key_name!r}; supported: {', '.join(capabilities.sorts)}",
                        code="not-supported",
                    )
                request.sort.append((key_name, descending))
        elif name in ("_include", "_revinclude"):
            allowed = capabilities.includes if name == "_include" else capabilities.revincludes
            for item in raw.split(","):
                if item not in allowed:
                    supported = ", ".join(allowed) or "none"
                    raise BadRequest(f"{name}={item} is not supported; supported: {supported}", code="not-supported")
                (request.include if name == "_include" else request.revinclude).append(item)
        elif name == "_summary":
            if raw == "count":
                request.summary_count = True
            elif raw != "false":
                raise BadRequest(f"_summary={raw} is not supported; supported: count, false", code="not-supported")
        elif name == "_elements":
            request.elements = [element.strip() for element in raw.split(",") if element.strip()]
        elif name == "_page":
            request.page = raw
        elif name in capabilities.params:
            param = capabilities.params[name]
            if modifier is not None and modifier not in _modifiers_for(param):
                raise BadRequest(
                    f"Modifier ':{modifier}' is not supported on search parameter '{name}'",
                    code="not-supported",
                )
            values = tuple(_parse_value(param, modifier, value, base_url) for value in _split_escaped(raw, ","))
            request.criteria.append(Criterion(param, modifier, values))
        elif strict:
            raise BadRequest(
                Issue(
                    "error",
                    "not-supported",
                    f"Unknown search parameter '{key}'. Supported: "
                    + ", ".join(sorted(capabilities.params) + list(RESULT_PARAMETERS)),
                )
            )
        else:
            request.ignored.append(key)
    return request
