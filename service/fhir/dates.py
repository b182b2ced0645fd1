"""FHIR date, dateTime and instant values as UTC ranges, the form date search compares."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

_DATE_TIME = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_ONE_MICROSECOND = timedelta(microseconds=1)


class InvalidDate(ValueError):
    """The text is not a FHIR date, dateTime or instant."""


def utcnow() -> datetime:
    """Now, in UTC, as the store keeps times (naive)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def date_range(text: str) -> tuple[datetime, datetime]:
    """The inclusive UTC range a FHIR date/dateTime denotes: '2024-03' -> March 2024 (first to last microsecond).

    A value without a time zone is taken as UTC (the server's zone), as FHIR leaves it to the server.
    """
    match = _DATE_TIME.match(text.strip())
    if not match:
        raise InvalidDate(
            f"{text!r} is not a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)"
        )
    parts = match.groupdict()
    try:
        year = int(parts["y"])
        if parts["m"] is None:
            low = datetime(year, 1, 1)
            return low, datetime(year + 1, 1, 1) - _ONE_MICROSECOND
        month = int(parts["m"])
        if parts["d"] is None:
            low = datetime(year, month, 1)
            days = calendar.monthrange(year, month)[1]
            return low, low + timedelta(days=days) - _ONE_MICROSECOND
        day = int(parts["d"])
        if parts["H"] is None:
            low = datetime(year, month, day)
            return low, low + timedelta(days=1) - _ONE_MICROSECOND
        if parts["tz"] is None:
            raise InvalidDate(f"{text!r} has a time but no time zone; FHIR requires one (e.g. Z or +01:00)")
        fraction = parts["f"] or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        tz = UTC if parts["tz"] == "Z" else datetime.strptime(parts["tz"].replace(":", ""), "%z").tzinfo
        low = datetime(year, month, day, int(parts["H"]), int(parts["M"]), int(parts["S"] or 0), micro, tzinfo=tz)
    except ValueError as exc:
        raise InvalidDate(f"{text!r} is not a valid date: {exc}") from None
    low = to_utc_naive(low)
    if parts["S"] is None:
        precision = timedelta(minutes=1)
    elif not fraction:
        precision = timedelta(seconds=1)
    else:
        precision = timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
    return low, low + precision - _ONE_MICROSECOND


def instant_text(value: datetime) -> str:
    """A UTC naive datetime as a FHIR instant with microseconds trimmed to milliseconds."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def http_date(value: datetime) -> str:
    return value.replace(tzinfo=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
