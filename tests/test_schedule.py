"""Tests of schedule arithmetic: month ends, daylight-saving changes and catch-up."""

from __future__ import annotations

import calendar
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rebill.errors import InvalidInput
from scheduler.schedule import (
    catch_up,
    first_run_on_or_after,
    lateness,
    next_run,
    upcoming_runs,
    validate_schedule,
)

NEW_YORK = "America/New_York"
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local_times(runs: list[datetime], timezone: str) -> list[datetime]:
    """Convert instants to naive wall-clock times in `timezone` for comparison."""
    zone = ZoneInfo(timezone)
    return [run.astimezone(zone).replace(tzinfo=None) for run in runs]


def at_nine(year: int, month_days: list[tuple[int, int]]) -> list[datetime]:
    return [datetime(year, month, day, 9) for month, day in month_days]


def last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


# Month ends


@pytest.mark.parametrize(
    ("year", "february_end"),
    [pytest.param(2024, 29, id="leap-2024"), pytest.param(2023, 28, id="common-2023")],
)
def test_thirty_first_clamps_to_month_end(year: int, february_end: int) -> None:
    runs = upcoming_runs("0 9 31 * *", NEW_YORK, utc(year, 1, 1), 13)

    expected = at_nine(
        year,
        [(1, 31), (2, february_end), (3, 31), (4, 30), (5, 31), (6, 30)]
        + [(7, 31), (8, 31), (9, 30), (10, 31), (11, 30), (12, 31)],
    )
    assert local_times(runs, NEW_YORK) == expected + [datetime(year + 1, 1, 31, 9)]


@pytest.mark.parametrize(
    ("year", "february_end"),
    [pytest.param(2024, 29, id="leap-2024"), pytest.param(2023, 28, id="common-2023")],
)
def test_thirtieth_in_february(year: int, february_end: int) -> None:
    runs = upcoming_runs("0 9 30 * *", "UTC", utc(year, 1, 1), 4)

    expected = at_nine(year, [(1, 30), (2, february_end), (3, 30), (4, 30)])
    assert local_times(runs, "UTC") == expected


def test_fifteenth_and_thirty_first() -> None:
    runs = upcoming_runs("0 9 15,31 * *", "UTC", utc(2023, 1, 1), 10)

    expected = at_nine(
        2023,
        [(1, 15), (1, 31), (2, 15), (2, 28), (3, 15), (3, 31), (4, 15), (4, 30)]
        + [(5, 15), (5, 31)],
    )
    assert local_times(runs, "UTC") == expected


def test_days_sharing_month_end_run_once() -> None:
    runs = upcoming_runs("0 9 29-31 * *", "UTC", utc(2023, 1, 1), 9)

    expected = at_nine(
        2023,
        [(1, 29), (1, 30), (1, 31), (2, 28), (3, 29), (3, 30), (3, 31), (4, 29)]
        + [(4, 30)],
    )
    assert local_times(runs, "UTC") == expected


def test_day_of_month_l() -> None:
    runs = upcoming_runs("0 0 L * *", "UTC", utc(2024, 1, 1), 4)

    assert local_times(runs, "UTC") == [
        datetime(2024, 1, 31),
        datetime(2024, 2, 29),
        datetime(2024, 3, 31),
        datetime(2024, 4, 30),
    ]


def test_day_missing_from_every_listed_month() -> None:
    april_june = upcoming_runs("0 9 31 4,6 *", "UTC", utc(2023, 1, 1), 3)
    february = upcoming_runs("0 9 30 2 *", "UTC", utc(2023, 1, 1), 2)

    assert local_times(april_june, "UTC") == [
        datetime(2023, 4, 30, 9),
        datetime(2023, 6, 30, 9),
        datetime(2024, 4, 30, 9),
    ]
    assert local_times(february, "UTC") == [
        datetime(2023, 2, 28, 9),
        datetime(2024, 2, 29, 9),
    ]


def test_leap_day_in_common_years() -> None:
    runs = upcoming_runs("0 9 29 2 *", "UTC", utc(2023, 1, 1), 3)

    assert local_times(runs, "UTC") == [
        datetime(2023, 2, 28, 9),
        datetime(2024, 2, 29, 9),
        datetime(2025, 2, 28, 9),
    ]


@pytest.mark.parametrize(
    ("cron", "expected_days"),
    [
        pytest.param("0 9 1-31/10 * *", [1, 11, 21], id="step"),
        pytest.param("0 9 31 * mon", [6, 13, 20, 27], id="weekday-restricted"),
    ],
)
def test_other_day_forms_skip_missing_days(cron: str, expected_days: list[int]) -> None:
    runs = upcoming_runs(cron, "UTC", utc(2023, 2, 1), len(expected_days) + 1)

    february = [run.day for run in runs if run.month == 2]
    assert february == expected_days
    assert runs[-1].month == 3


# Daylight-saving changes

DST_CASES = [
    pytest.param(
        "30 1 * * *", NEW_YORK, utc(2024, 3, 9, 12), [utc(2024, 3, 10, 6, 30)],
        id="new-york-spring-0130",
    ),
    pytest.param(
        "30 2 * * *", NEW_YORK, utc(2024, 3, 9, 12),
        [utc(2024, 3, 10, 7), utc(2024, 3, 11, 6, 30)],
        id="new-york-spring-0230-runs-at-0300",
    ),
    pytest.param(
        "30 1 * * *", NEW_YORK, utc(2024, 11, 2, 12),
        [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)],
        id="new-york-fall-0130-runs-once",
    ),
    pytest.param(
        "30 1 * * *", NEW_YORK, utc(2024, 11, 3, 6, 15), [utc(2024, 11, 4, 6, 30)],
        id="new-york-fall-after-in-repeated-hour",
    ),
    pytest.param(
        "30 2 * * *", NEW_YORK, utc(2024, 11, 2, 12), [utc(2024, 11, 3, 7, 30)],
        id="new-york-fall-0230",
    ),
    pytest.param(
        "0 * * * *", NEW_YORK, utc(2024, 3, 10, 4, 30),
        [utc(2024, 3, 10, 5), utc(2024, 3, 10, 6), utc(2024, 3, 10, 7)]
        + [utc(2024, 3, 10, 8)],
        id="new-york-spring-hourly",
    ),
    pytest.param(
        "0 * * * *", NEW_YORK, utc(2024, 11, 3, 3, 30),
        [utc(2024, 11, 3, 4), utc(2024, 11, 3, 5), utc(2024, 11, 3, 7)]
        + [utc(2024, 11, 3, 8)],
        id="new-york-fall-hourly",
    ),
    pytest.param(
        "30 1 * * *", LONDON, utc(2024, 3, 30, 12),
        [utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30)],
        id="london-spring-0130-runs-at-0200",
    ),
    pytest.param(
        "30 2 * * *", LONDON, utc(2024, 3, 30, 12), [utc(2024, 3, 31, 1, 30)],
        id="london-spring-0230",
    ),
    pytest.param(
        "30 1 * * *", LONDON, utc(2024, 10, 26, 12),
        [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)],
        id="london-fall-0130-runs-once",
    ),
    pytest.param(
        "30 2 * * *", LONDON, utc(2024, 10, 26, 12), [utc(2024, 10, 27, 2, 30)],
        id="london-fall-0230",
    ),
    pytest.param(
        "0 * * * *", LONDON, utc(2024, 3, 30, 23, 30),
        [utc(2024, 3, 31, 0), utc(2024, 3, 31, 1), utc(2024, 3, 31, 2)],
        id="london-spring-hourly",
    ),
    pytest.param(
        "0 * * * *", LONDON, utc(2024, 10, 26, 22, 30),
        [utc(2024, 10, 26, 23), utc(2024, 10, 27, 0), utc(2024, 10, 27, 2)],
        id="london-fall-hourly",
    ),
    pytest.param(
        "15 2 * * *", LORD_HOWE, utc(2024, 10, 5),
        [utc(2024, 10, 5, 15, 30), utc(2024, 10, 6, 15, 15)],
        id="lord-howe-spring-0215-runs-at-0230",
    ),
    pytest.param(
        "45 1 * * *", LORD_HOWE, utc(2024, 4, 6),
        [utc(2024, 4, 6, 14, 45), utc(2024, 4, 7, 15, 15)],
        id="lord-howe-fall-0145-runs-once",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("cron", "timezone", "after", "expected"), DST_CASES)
def test_daylight_saving_change(
    cron: str, timezone: str, after: datetime, expected: list[datetime]
) -> None:
    assert upcoming_runs(cron, timezone, after, len(expected)) == expected


def test_spring_forward_runs_at_change() -> None:
    run = next_run("30 2 * * *", NEW_YORK, utc(2024, 3, 9, 12))

    wall_time = run.astimezone(ZoneInfo(NEW_YORK))
    assert (wall_time.hour, wall_time.minute) == (3, 0)
    assert wall_time.utcoffset() == timedelta(hours=-4)


def test_weekly_keeps_local_time() -> None:
    runs = upcoming_runs("0 10 * * 1", NEW_YORK, utc(2024, 3, 1), 3)

    assert runs == [utc(2024, 3, 4, 15), utc(2024, 3, 11, 14), utc(2024, 3, 18, 14)]
    for wall_time in local_times(runs, NEW_YORK):
        assert wall_time.weekday() == 0
        assert (wall_time.hour, wall_time.minute) == (10, 0)


# Inputs and outputs


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(utc(2024, 5, 1, 8), id="utc"),
        pytest.param(
            datetime(2024, 5, 1, 17, tzinfo=ZoneInfo("Asia/Tokyo")), id="tokyo"
        ),
        pytest.param(datetime(2024, 5, 1, 4, tzinfo=ZoneInfo(NEW_YORK)), id="new-york"),
    ],
)
def test_result_is_utc_and_strictly_after(after: datetime) -> None:
    # Each `after` is 09:00 London time, itself a scheduled instant.
    run = next_run("0 9 * * *", LONDON, after)

    assert run.tzinfo is UTC
    assert run == utc(2024, 5, 2, 8)


def test_first_run_counts_start() -> None:
    start = utc(2024, 5, 1, 8)

    assert first_run_on_or_after("0 9 * * *", LONDON, start) == start
    later = start + timedelta(microseconds=1)
    assert first_run_on_or_after("0 9 * * *", LONDON, later) == utc(2024, 5, 2, 8)


def test_upcoming_runs_count_zero() -> None:
    assert upcoming_runs("0 9 * * *", "UTC", utc(2024, 1, 1), 0) == []


def test_upcoming_runs_negative_count() -> None:
    with pytest.raises(ValueError, match="count must be 0 or more, got -1"):
        upcoming_runs("0 9 * * *", "UTC", utc(2024, 1, 1), -1)


def test_naive_after_rejected() -> None:
    with pytest.raises(ValueError, match="after 2024-01-01T00:00:00 is naive"):
        next_run("0 9 * * *", "UTC", datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        pytest.param("61 * * * *", "out of range", id="minute-out-of-range"),
        pytest.param("0 9 * *", "it has 4 fields", id="four-fields"),
        pytest.param("0 0 9 * * *", "it has 6 fields", id="seconds-field"),
        pytest.param("@monthly", "it has 1 fields", id="macro"),
        pytest.param("R 9 * * *", "random", id="random-minute"),
        pytest.param("H 9 * * *", "hashed", id="hashed-minute"),
        pytest.param("0 9 30-31/1 2 *", "matches no date", id="never-matches"),
    ],
)
def test_invalid_cron_rejected(cron: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_schedule(cron, "UTC")

    assert raised.value.field == "cron"
    assert f"invalid cron expression {cron!r}" in raised.value.message
    assert reason in raised.value.message


def test_unknown_time_zone_rejected() -> None:
    with pytest.raises(InvalidInput) as raised:
        next_run("0 9 * * *", "Mars/Olympus_Mons", utc(2024, 1, 1))

    assert raised.value.field == "timezone"
    assert "unknown time zone 'Mars/Olympus_Mons'" in raised.value.message


@pytest.mark.parametrize(
    "cron",
    [
        pytest.param("0 9 29 2 *", id="leap-day"),
        pytest.param("0 9 31 4 *", id="clamped-only"),
        pytest.param("0 9 * mar thu", id="month-and-weekday-names"),
        pytest.param("0 0 29 2 1#5", id="fifth-monday-on-leap-day"),
    ],
)
def test_rare_expressions_accepted(cron: str) -> None:
    validate_schedule(cron, NEW_YORK)

    assert next_run(cron, NEW_YORK, utc(2024, 1, 1)) > utc(2024, 1, 1)


# Catch-up and lateness


def test_catch_up_after_ten_day_outage() -> None:
    due = utc(2024, 5, 1, 8)
    now = utc(2024, 5, 11, 12)

    bill_at, next_billing_at = catch_up("0 9 * * *", LONDON, due, now)

    assert bill_at == due
    assert next_billing_at == utc(2024, 5, 12, 8)
    assert next_billing_at > now


def test_catch_up_when_now_is_a_run() -> None:
    due = utc(2024, 5, 1, 8)
    now = utc(2024, 5, 11, 8)

    bill_at, next_billing_at = catch_up("0 9 * * *", LONDON, due, now)

    assert bill_at == due
    assert next_billing_at == utc(2024, 5, 12, 8)


def test_catch_up_on_time() -> None:
    due = utc(2024, 5, 1, 8)

    assert catch_up("0 9 * * *", LONDON, due, due) == (due, utc(2024, 5, 2, 8))


def test_catch_up_rejects_future_due() -> None:
    with pytest.raises(ValueError, match="not due yet"):
        catch_up("0 9 * * *", LONDON, utc(2024, 5, 2, 8), utc(2024, 5, 1, 8))


def test_lateness() -> None:
    scheduled_at = utc(2024, 5, 1, 8)

    assert lateness(scheduled_at, utc(2024, 5, 4, 9)) == timedelta(days=3, hours=1)
    assert lateness(scheduled_at, utc(2024, 5, 1, 7)) == timedelta(hours=-1)


# Random schedules, zones and start instants

DayRule = Callable[[date], bool]


def clamped(days: set[int]) -> DayRule:
    """Allow `days`, and a month's last day when the month lacks one of them."""
    return lambda day: (
        day.day in days or (day.day == last_day(day) and max(days) > last_day(day))
    )


def every_day(day: date) -> bool:
    return True


def hours_at(minutes: set[int], hours: range = range(24)) -> set[tuple[int, int]]:
    return {(hour, minute) for hour in hours for minute in minutes}


PROPERTY_SCHEDULES: dict[str, tuple[DayRule, set[tuple[int, int]]]] = {
    "0 9 * * *": (every_day, {(9, 0)}),
    "30 2 * * *": (every_day, {(2, 30)}),
    "45 1 * * *": (every_day, {(1, 45)}),
    "30 0 * * *": (every_day, {(0, 30)}),
    "0 * * * *": (every_day, hours_at({0})),
    "*/20 * * * *": (every_day, hours_at({0, 20, 40})),
    "0 9 31 * *": (clamped({31}), {(9, 0)}),
    "30 2 15,31 * *": (clamped({15, 31}), {(2, 30)}),
    "0 0 29-31 * *": (clamped({29, 30, 31}), {(0, 0)}),
    "0 12 1-5,31 * *": (clamped({1, 2, 3, 4, 5, 31}), {(12, 0)}),
    "0 0 30 2 *": (lambda day: day.month == 2 and day.day == last_day(day), {(0, 0)}),
    "0 0 L * *": (lambda day: day.day == last_day(day), {(0, 0)}),
    "15 10 * * 1": (lambda day: day.weekday() == 0, {(10, 15)}),
    "0 6 1-31/10 * *": (lambda day: day.day in {1, 11, 21, 31}, {(6, 0)}),
}

PROPERTY_ZONES = [
    "UTC",
    NEW_YORK,
    LONDON,
    LORD_HOWE,
    "America/Santiago",
    "America/Havana",
    "America/St_Johns",
    "Africa/Cairo",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Europe/Berlin",
]


def offset_change_days(zone: ZoneInfo) -> list[datetime]:
    """Return each UTC midnight in 2023-2026 whose offset differs from the day before.

    The change itself happened during the 24 hours before that midnight.
    """
    days = [utc(2023, 1, 1) + timedelta(days=n) for n in range(4 * 366)]
    return [
        day
        for previous, day in zip(days, days[1:], strict=False)
        if previous.astimezone(zone).utcoffset() != day.astimezone(zone).utcoffset()
    ]


def random_after(rng: random.Random, zone: ZoneInfo) -> datetime:
    """Pick a start instant, half the time shortly before an offset change."""
    changes = offset_change_days(zone)
    if changes and rng.random() < 0.5:
        before_change = timedelta(hours=24 + rng.uniform(0, 12))
        return rng.choice(changes) - before_change
    seconds = rng.uniform(0, 4 * 365 * 86400)
    return utc(2023, 1, 1) + timedelta(seconds=seconds)


def gap_wall_times(run: datetime, zone: ZoneInfo) -> list[datetime]:
    """Return the wall-clock minutes skipped by a change at `run`, if one is there."""
    before = (run - timedelta(seconds=1)).astimezone(zone).utcoffset()
    after = run.astimezone(zone).utcoffset()
    assert before is not None and after is not None
    if after <= before:
        return []
    first = (run + before).replace(tzinfo=None)
    minutes = int((after - before).total_seconds() // 60)
    return [first + timedelta(minutes=n) for n in range(minutes)]


def is_allowed(wall_time: datetime, rule: tuple[DayRule, set[tuple[int, int]]]) -> bool:
    allowed_day, allowed_times = rule
    return allowed_day(wall_time.date()) and (
        (wall_time.hour, wall_time.minute) in allowed_times
    )


def test_random_schedules_are_consistent() -> None:
    rng = random.Random(20240310)
    zones = {name: ZoneInfo(name) for name in PROPERTY_ZONES}

    for case in range(150):
        cron = rng.choice(sorted(PROPERTY_SCHEDULES))
        timezone = rng.choice(PROPERTY_ZONES)
        zone = zones[timezone]
        after = random_after(rng, zone)
        label = f"case {case}: {cron!r} in {timezone} after {after.isoformat()}"

        runs = upcoming_runs(cron, timezone, after, 30)

        assert runs[0] == next_run(cron, timezone, after), label
        assert runs[0] > after, label
        for previous, run in zip(runs, runs[1:], strict=False):
            assert run > previous, f"{label}: {run} not after {previous}"
        for run in runs:
            assert run.tzinfo is UTC, label
            assert first_run_on_or_after(cron, timezone, run) == run, label
            wall_time = run.astimezone(zone).replace(tzinfo=None)
            candidates = [wall_time] + gap_wall_times(run, zone)
            assert any(
                is_allowed(candidate, PROPERTY_SCHEDULES[cron])
                for candidate in candidates
            ), f"{label}: {run} is {wall_time} local, which {cron!r} does not allow"
