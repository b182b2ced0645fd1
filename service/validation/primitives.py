"""FHIR primitive values read for comparison: dates as ranges, times as seconds, decimals exactly."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_DATE_TIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))?)?)?"
)
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?")
_TICK = timedelta(microseconds=1)

INTEGER_MIN = -2147483648
INTEGER_MAX = 2147483647


def date_range(text: Any, *, with_time: bool) -> tuple[datetime, datetime] | None:
    """The inclusive UTC interval a FHIR date (or dateTime) denotes: '2022-06' is all of June 2022.

    None when the text is not a valid value of that type. A date without a time belongs to no
    particular zone; it is read as UTC, the usual reading for questionnaire bounds.
    """
    if not isinstance(text, str):
        return None
    match = (_DATE_TIME if with_time else _DATE).fullmatch(text)
    if match is None:
        return None
    groups = match.groups()
    try:
        year = int(groups[0])
        if year == 0:
            return None
        if groups[1] is None:
            low, step = datetime(year, 1, 1), "year"
        elif groups[2] is None:
            low, step = datetime(year, int(groups[1]), 1), "month"
        elif not with_time or groups[3] is None:
            low, step = datetime(year, int(groups[1]), int(groups[2])), "day"
        else:
            return _instant_range(groups)
    except (ValueError, OverflowError):
        return None
    try:
        if step == "year":
            high = datetime(year + 1, 1, 1)
        elif step == "month":
            high = datetime(year + low.month // 12, low.month % 12 + 1, 1)
        else:
            high = low + timedelta(days=1)
    except (ValueError, OverflowError):
        return low, datetime.max
    return low, high - _TICK


def _instant_range(groups: tuple[str | Any, ...]) -> tuple[datetime, datetime] | None:
    hour, minute = int(groups[3]), int(groups[4])
    second = min(int(groups[5]), 59)  # a leap second is the last second of its minute
    fraction = (groups[6] or "")[1:]
    micro = int((fraction + "000000")[:6]) if fraction else 0
    local = datetime(int(groups[0]), int(groups[1]), int(groups[2]), hour, minute, second, micro)
    zone = groups[7]
    offset = timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    low = local - offset
    precision = timedelta(microseconds=10 ** max(0, 6 - len(fraction))) if fraction else timedelta(seconds=1)
    return low, low + precision - _TICK


def time_seconds(text: Any) -> Decimal | None:
    """Seconds since midnight of a FHIR time ('hh:mm:ss[.fff]'), None when invalid."""
    if not isinstance(text, str):
        return None
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if hours > 23 or minutes > 59 or seconds > 60:
        return None
    fraction = Decimal(match.group(4)) if match.group(4) else Decimal(0)
    return Decimal(hours * 3600 + minutes * 60 + seconds) + fraction


def number(value: Any) -> Decimal | None:
    """A JSON number as an exact Decimal (booleans and non-finite floats are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        # repr() is the shortest text that reads back as this float: what the client wrote.
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    return None


def decimal_places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and INTEGER_MIN <= value <= INTEGER_MAX


def to_decimal(text: Any) -> Decimal | None:
    """A number given as JSON number or as text (a Coding code such as '2.2')."""
    found = number(text)
    if found is not None:
        return found
    if isinstance(text, str):
        try:
            parsed = Decimal(text.strip())
        except (InvalidOperation, ValueError):
            return None
        return parsed if parsed.is_finite() else None
    return None
