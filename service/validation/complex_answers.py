"""Answers of complex types: Attachment (mimeType, maxSize, size/data/hash agreement), Reference (syntax,
resource type, referenceResource) and Quantity units (unit, unitOption, unitValueSet)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from service.validation.context import (
    EXT_MAX_SIZE,
    EXT_MIME_TYPE,
    EXT_REFERENCE_RESOURCE,
    EXT_UNIT,
    EXT_UNIT_OPTION,
    EXT_UNIT_VALUE_SET,
    JSON,
    Context,
    extension_value,
    extension_values,
    text_value,
)
from service.validation.primitives import number
from service.validation.references import R4_RESOURCE_TYPES, reference_target
from service.validation.units import unit_label
from service.validation.value_sets import Expansion, ValueSets, normalise, report_not_in


def _mime_allows(allowed: str, content_type: str) -> bool:
    wanted = content_type.split(";", 1)[0].strip().lower()
    pattern = allowed.strip().lower()
    if pattern.endswith("/*"):
        return wanted.startswith(pattern[:-1])
    return wanted == pattern


def check_attachment(context: Context, q_item: JSON, value: JSON, path: str, label: str, link_id: str | None) -> None:
    def problem(text: str, code: str = "value") -> None:
        context.add("error", code, f"Attachment answer to item {label} {text}", path, link_id)

    content_type = text_value(value.get("contentType"))
    allowed = [entry for key, entry in extension_values(q_item, EXT_MIME_TYPE) if isinstance(entry, str)]
    if allowed:
        if content_type is None:
            problem(f"has no contentType; the item accepts {', '.join(allowed)}")
        elif not any(_mime_allows(entry, content_type) for entry in allowed):
            problem(f"is of type {content_type}; the item accepts {', '.join(allowed)}")
    data = value.get("data")
    decoded: bytes | None = None
    if data is not None:
        if not isinstance(data, str):
            problem("has data that is not base64 text")
        else:
            try:
                decoded = base64.b64decode("".join(data.split()), validate=True)
            except (binascii.Error, ValueError):
                problem("has data that is not valid base64")
        if content_type is None:
            problem(
                "has data but no contentType (att-1: If the Attachment has data, it SHALL have a contentType)",
                "invariant",
            )
    size = value.get("size")
    declared: int | None = None
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            problem(f"has an invalid size {size!r}")
        else:
            declared = size
            if decoded is not None and declared != len(decoded):
                problem(f"declares a size of {declared} bytes but its data is {len(decoded)} bytes")
    digest = value.get("hash")
    if decoded is not None and isinstance(digest, str):
        actual = base64.b64encode(hashlib.sha1(decoded).digest()).decode("ascii")
        if "".join(digest.split()) != actual:
            problem("has a hash that does not match its data (SHA-1, base64)")
    found = extension_value(q_item, EXT_MAX_SIZE)
    limit = number(found[1]) if found is not None else None
    sizes = [amount for amount in (declared, len(decoded) if decoded is not None else None) if amount is not None]
    # maxSize is in bytes (the extension registry's definition; early R4 builds said megabytes).
    if limit is not None and sizes and max(sizes) > limit:
        problem(f"is {max(sizes)} bytes; the item accepts at most {limit} bytes")


def check_reference(context: Context, q_item: JSON, value: JSON, path: str, label: str, link_id: str | None) -> None:
    def problem(text: str) -> None:
        context.add("error", "value", f"Reference answer to item {label} {text}", path, link_id)

    reference = value.get("reference")
    kind: str | None = None
    if reference is not None:
        if not isinstance(reference, str) or reference == "":
            problem("has a reference that is not a non-empty string")
        else:
            kind, issue = reference_target(reference)
            if issue is not None:
                problem(f"is invalid: '{reference}' {issue}")
                kind = None
    declared = value.get("type")
    if declared is not None:
        if not isinstance(declared, str) or declared not in R4_RESOURCE_TYPES:
            problem(f"has type {declared!r}, which is not a FHIR R4 resource type")
            declared = None
        elif kind is not None and kind != declared:
            problem(f"says type {declared} but points to a {kind}")
    if reference is None and value.get("identifier") is None and text_value(value.get("display")) is None:
        problem("has no reference, identifier or display")
    allowed = [entry for key, entry in extension_values(q_item, EXT_REFERENCE_RESOURCE) if isinstance(entry, str)]
    target = declared if isinstance(declared, str) else kind
    if allowed and target is not None and target not in allowed and "Resource" not in allowed:
        problem(f"refers to a resource of type {target}; the item accepts {', '.join(allowed)}")


def _unit_matches(quantity: JSON, coding: Any) -> bool:
    if not isinstance(coding, Mapping):
        return False
    code = text_value(quantity.get("code"))
    if code is not None:
        system, wanted = text_value(quantity.get("system")), text_value(coding.get("system"))
        return code == text_value(coding.get("code")) and (system is None or wanted is None or system == wanted)
    unit = text_value(quantity.get("unit"))
    names = [text for text in (text_value(coding.get("display")), text_value(coding.get("code"))) if text]
    return unit is not None and any(normalise(unit) == normalise(name) for name in names)


def _unit_names(codings: list[Any]) -> str:
    names = []
    for coding in codings:
        if isinstance(coding, Mapping):
            names.append(text_value(coding.get("code")) or text_value(coding.get("display")) or "?")
    return ", ".join(names)


def check_quantity_units(
    context: Context,
    value_sets: ValueSets,
    q_item: JSON,
    value: JSON,
    path: str,
    label: str,
    link_id: str | None,
) -> None:
    if number(value.get("value")) is None:
        context.add("error", "value", f"Quantity answer to item {label} has no numeric value", path, link_id)
    unit_text = unit_label(value)
    choices = [coding for key, coding in extension_values(q_item, EXT_UNIT_OPTION) if key == "valueCoding"]
    single = extension_value(q_item, EXT_UNIT)
    if choices:
        if not any(_unit_matches(value, coding) for coding in choices):
            context.add(
                "error",
                "code-invalid",
                f"Quantity answer to item {label} has the unit {unit_text}; the item accepts {_unit_names(choices)}",
                path,
                link_id,
            )
    elif single is not None and single[0] == "valueCoding" and not _unit_matches(value, single[1]):
        context.add(
            "error",
            "code-invalid",
            f"Quantity answer to item {label} has the unit {unit_text}; the item's unit is {_unit_names([single[1]])}",
            path,
            link_id,
        )
    found = extension_value(q_item, EXT_UNIT_VALUE_SET)
    if found is None or not isinstance(found[1], str):
        return
    expansion = value_sets.expansion(found[1])
    if isinstance(expansion, str):
        context.once(
            "warning",
            "not-supported",
            f"The units of item {label} could not be checked: {expansion}",
            path,
            link_id,
        )
        return
    _check_unit_in(context, expansion, found[1], value, unit_text, path, label, link_id)


def _check_unit_in(
    context: Context,
    expansion: Expansion,
    reference: str,
    value: JSON,
    unit_text: str,
    path: str,
    label: str,
    link_id: str | None,
) -> None:
    code = text_value(value.get("code"))
    if code is None:
        context.add(
            "error",
            "code-invalid",
            f"Quantity answer to item {label} has no unit code from the value set {reference}",
            path,
            link_id,
        )
        return
    if expansion.matching(text_value(value.get("system")), code):
        return
    absent = f"Quantity answer to item {label} has the unit {unit_text}, which is not in {reference}"
    unconfirmed = f"The unit {unit_text} of the answer to item {label}"
    report_not_in(context, expansion, reference, absent, unconfirmed, path, link_id)
