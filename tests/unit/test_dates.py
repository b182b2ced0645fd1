"""FHIR dates as ranges: the basis of every date search."""

from __future__ import annotations

from datetime import datetime

import pytest

from service.fhir.dates import DateOutOfRange, InvalidDate, date_range, instant_text


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2024", datetime(2024, 1, 1), datetime(2024, 12, 31, 23, 59, 59, 999999)),
        ("2024-02", datetime(2024, 2, 1), datetime(2024, 2, 29, 23, 59, 59, 999999)),
        ("2023-02", datetime(2023, 2, 1), datetime(2023, 2, 28, 23, 59, 59, 999999)),
        ("2024-12-31", datetime(2024, 12, 31), datetime(2024, 12, 31, 23, 59, 59, 999999)),
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10), datetime(2024, 3, 1, 10, 0, 0, 999999)),
        ("2024-03-01T10:00:00+01:00", datetime(2024, 3, 1, 9), datetime(2024, 3, 1, 9, 0, 0, 999999)),
        (
            "2024-03-01T00:30:00+02:00",
            datetime(2024, 2, 29, 22, 30),
            datetime(2024, 2, 29, 22, 30, 0, 999999),
        ),
        ("2024-03-01T10:00Z", datetime(2024, 3, 1, 10), datetime(2024, 3, 1, 10, 0, 59, 999999)),
        (
            "2024-03-01T10:00:00.25Z",
            datetime(2024, 3, 1, 10, 0, 0, 250000),
            datetime(2024, 3, 1, 10, 0, 0, 259999),
        ),
    ],
)
def test_date_range(text: str, low: datetime, high: datetime) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize(
    "text", ["", "24", "2024-13", "2024-02-30", "2024-01-01T10:00:00", "2024-01-01T25:00Z", "today"]
)
def test_invalid_dates(text: str) -> None:
    with pytest.raises(InvalidDate):
        date_range(text)


LAST = datetime(9999, 12, 31, 23, 59, 59, 999999)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("9999", datetime(9999, 1, 1), LAST),
        ("9999-12", datetime(9999, 12, 1), LAST),
        ("9999-12-31", datetime(9999, 12, 31), LAST),
        ("9999-12-31T23:59Z", datetime(9999, 12, 31, 23, 59), LAST),
        ("9999-12-31T23:59:59.999999Z", LAST, LAST),
        ("9999-12-31T23:59:59+14:00", datetime(9999, 12, 31, 9, 59, 59), datetime(9999, 12, 31, 9, 59, 59, 999999)),
        ("0001", datetime(1, 1, 1), datetime(1, 12, 31, 23, 59, 59, 999999)),
        ("0001-01-01T00:00:00-14:00", datetime(1, 1, 1, 14), datetime(1, 1, 1, 14, 0, 0, 999999)),
    ],
)
def test_the_ends_of_the_calendar(text: str, low: datetime, high: datetime) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-14:00", "9999-12-31T23:00-01:00", "0001-01-01T00:00:00+14:00"])
def test_instants_outside_the_calendar_in_utc(text: str) -> None:
    with pytest.raises(DateOutOfRange, match="outside the dates this server handles"):
        date_range(text)
    assert issubclass(DateOutOfRange, InvalidDate)  # every caller refusing invalid dates refuses these


def test_instant_text_is_utc_with_milliseconds() -> None:
    assert instant_text(datetime(2024, 3, 1, 9, 5, 7, 123456)) == "2024-03-01T09:05:07.123Z"
