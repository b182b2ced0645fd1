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


class DateOutOfRange(InvalidDate):
    """A valid FHIR dateTime whose instant falls outside the years 1 to 9999 in UTC (e.g. the first hours of
    the year 1 east of Greenwich): Python's datetime, and so the store, cannot hold it."""


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
        # Each range ends on its own last microsecond, never by stepping into the next period: the day
        # after 9999-12-31 is past the last date there is.
        year = int(parts["y"])
        if parts["m"] is None:
            return datetime(year, 1, 1), datetime(year, 12, 31, 23, 59, 59, 999_999)
        month = int(parts["m"])
        if parts["d"] is None:
            days = calendar.monthrange(year, month)[1]
            return datetime(year, month, 1), datetime(year, month, days, 23, 59, 59, 999_999)
        day = int(parts["d"])
        if parts["H"] is None:
            return datetime(year, month, day), datetime(year, month, day, 23, 59, 59, 999_999)
        if parts["tz"] is None:
            raise InvalidDate(f"{text!r} has a time but no time zone; FHIR requires one (e.g. Z or +01:00)")
        fraction = parts["f"] or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        tz = UTC if parts["tz"] == "Z" else datetime.strptime(parts["tz"].replace(":", ""), "%z").tzinfo
        low = datetime(year, month, day, int(parts["H"]), int(parts["M"]), int(parts["S"] or 0), micro, tzinfo=tz)
    except ValueError as exc:
        raise InvalidDate(f"{text!r} is not a valid date: {exc}") from None
    try:
        low = to_utc_naive(low)
    except OverflowError:
        raise DateOutOfRange(
            f"{text!r} is outside the dates this server handles: in UTC it falls before 0001-01-01 or after 9999-12-31"
        ) from None
    if parts["S"] is None:
        precision = timedelta(minutes=1)
    elif not fraction:
        precision = timedelta(seconds=1)
    else:
        precision = timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
    # The last microsecond of the minute (second...) it names: within the same UTC day, so never past the end.
    return low, low + (precision - _ONE_MICROSECOND)


def instant_text(value: datetime) -> str:
    """A UTC naive datetime as a FHIR instant with microseconds trimmed to milliseconds."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def http_date(value: datetime) -> str:
    return value.replace(tzinfo=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
