"""Opening hours: table tests in the number's time zone, DST days and public holidays."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pbxd.config.schedule import ScheduleError, parse_opening_hours
from pbxd.dialplan.hours import OpeningHours

PARIS = ZoneInfo("Europe/Paris")

ACME = {
    "weekly": {"mon-fri": ["09:00-12:30", "14:00-18:00"]},
    "holidays": "FR",
    "closed": [
        "2026-12-28 to 2027-01-01",
        {"date": "12-24", "from": "12:00"},
        {"from": "2026-07-10 15:00", "until": "2026-07-11 10:00"},
    ],
    "open": [{"date": "2026-12-20", "hours": ["10:00-16:00"]}],
}


@pytest.fixture(scope="module")
def acme() -> OpeningHours:
    return parse_opening_hours("acme-office", ACME, "Europe/Paris")


def paris(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-12-01 09:00", "open"),  # Tuesday, first minute
        ("2026-12-01 08:59", "closed"),
        ("2026-12-01 12:29", "open"),
        ("2026-12-01 12:30", "closed"),  # lunch: the end minute is excluded
        ("2026-12-01 14:00", "open"),
        ("2026-12-01 18:00", "closed"),
        ("2026-12-05 10:00", "closed"),  # Saturday
        ("2026-12-25 10:00", "holiday: Christmas Day"),
        ("2026-07-14 10:00", "holiday: National Day"),
        ("2026-05-14 10:00", "holiday: Ascension Day"),  # a moving feast
        ("2026-12-24 11:59", "open"),
        ("2026-12-24 12:00", "closure"),  # every 24 December from noon
        ("2027-12-24 14:00", "closure"),  # every year
        ("2026-12-29 10:00", "closed day"),  # closure week
        ("2027-01-01 10:00", "closed day"),
        ("2026-07-10 14:59", "open"),
        ("2026-07-10 15:00", "closure"),
        ("2026-12-20 10:00", "open"),  # a Sunday, opened exceptionally
        ("2026-12-20 16:00", "closed"),
    ],
)
def test_acme_office_hours(acme: OpeningHours, local: str, expected: str) -> None:
    assert acme.why(paris(local)) == expected
    assert acme.is_open(paris(local)) is (expected == "open")


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # 2026-03-29: Paris goes from UTC+1 to UTC+2 at 01:00 UTC.
        ("2026-03-27 07:59", False),  # Friday 08:59 CET
        ("2026-03-27 08:00", True),  # Friday 09:00 CET
        ("2026-03-30 06:59", False),  # Monday 08:59 CEST: an hour earlier in UTC
        ("2026-03-30 07:00", True),  # Monday 09:00 CEST
        ("2026-03-30 15:59", True),  # 17:59 CEST
        ("2026-03-30 16:00", False),  # 18:00 CEST
        # 2026-10-25: back to UTC+1 at 01:00 UTC.
        ("2026-10-23 07:00", True),  # Friday 09:00 CEST
        ("2026-10-26 07:00", False),  # Monday 08:00 CET, not 09:00
        ("2026-10-26 08:00", True),  # Monday 09:00 CET
    ],
)
def test_daylight_saving_moves_the_instant_not_the_hour(
    acme: OpeningHours, utc: str, expected: bool
) -> None:
    at = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert acme.is_open(at) is expected


def test_night_line_crossing_midnight_and_dst_night() -> None:
    night = parse_opening_hours("night", {"weekly": {"sat": "22:00-06:00"}}, "Europe/Paris")
    assert night.is_open(paris("2026-03-28 23:30"))
    assert night.is_open(paris("2026-03-29 05:59"))  # the night DST starts: still the morning part
    assert not night.is_open(paris("2026-03-29 06:00"))
    assert not night.is_open(paris("2026-03-27 23:30"))  # Friday night: closed


def test_subdivision_holidays() -> None:
    alsace = parse_opening_hours(
        "metz",
        {"weekly": {"daily": "00:00-24:00"}, "holidays": {"country": "FR", "subdivision": "57"}},
        "Europe/Paris",
    )
    plain = parse_opening_hours(
        "paris", {"weekly": {"daily": "00:00-24:00"}, "holidays": "FR"}, "Europe/Paris"
    )
    good_friday = paris("2026-04-03 10:00")  # a holiday in Moselle only
    assert not alsace.is_open(good_friday)
    assert plain.is_open(good_friday)


def test_other_time_zone_reads_its_own_wall_clock() -> None:
    london = parse_opening_hours("uk", {"weekly": {"mon-fri": "09:00-17:00"}}, "Europe/London")
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # 09:30 in London, 10:30 in Paris
    assert london.is_open(at)
    assert not london.is_open(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))


def test_never_and_always_open() -> None:
    assert parse_opening_hours("x", {"weekly": {}}, "UTC").never_open()
    always = parse_opening_hours("x", {"weekly": {"daily": "00:00-24:00"}}, "UTC")
    assert always.always_open() and not always.never_open()
    assert not parse_opening_hours("x", ACME, "UTC").always_open()


def test_naive_instant_is_refused(acme: OpeningHours) -> None:
    with pytest.raises(ValueError, match="aware"):
        acme.is_open(datetime(2026, 12, 1, 10, 0))


@pytest.mark.parametrize(
    ("data", "message", "key"),
    [
        (
            {"weekly": {"mon-fry": "09:00-18:00"}},
            "not a day or range of days",
            ("weekly", "mon-fry"),
        ),
        ({"weekly": {"mon": "9h-18h"}}, "not a time of day", ("weekly", "mon")),
        ({"weekly": {"mon": "25:00-26:00"}}, "not a time of day", ("weekly", "mon")),
        ({"weekly": {"mon": "10:00-10:00"}}, "is empty", ("weekly", "mon")),
        ({"holidays": "FX"}, "no public holidays known for country 'FX'", ("holidays",)),
        ({"holidays": {"country": "FR", "subdivision": "99"}}, "not a subdivision", ("holidays",)),
        ({"closed": ["2026-02-30"]}, "not a date in the calendar", ("closed", 0)),
        ({"closed": ["2026-12-31 to 2026-12-01"]}, "ends before it starts", ("closed", 0)),
        ({"closed": ["2026-12-24 to 12-26"]}, "both dates with a year", ("closed", 0)),
        (
            {"closed": [{"date": "12-24", "from": "14:00", "until": "12:00"}]},
            "must come after",
            ("closed", 0),
        ),
        ({"closed": [{"from": "2026-07-10 15:00"}]}, "both `from` and `until`", ("closed", 0)),
        ({"closed": [{"day": "12-24"}]}, "unknown key 'day'", ("closed", 0)),
        ({"open": [{"date": "2026-12-20"}]}, "exceptional opening", ("open", 0)),
        ({"closed": ["2026-12-2٤"]}, "not a date", ("closed", 0)),
        ({"weekdays": {}}, "unknown key 'weekdays'", ("weekdays",)),
    ],
)
def test_schedule_errors_say_what_and_where(
    data: dict[str, object], message: str, key: tuple[object, ...]
) -> None:
    with pytest.raises(ScheduleError, match=message) as caught:
        parse_opening_hours("x", data, "Europe/Paris")
    assert caught.value.key == key


def test_did_you_mean_for_holiday_country() -> None:
    with pytest.raises(ScheduleError, match="did you mean 'FR"):
        parse_opening_hours("x", {"holidays": "FRX"}, "Europe/Paris")
