"""Schedule arithmetic: when a subscription runs next, from the instants passed in.

A schedule is a 5-field cron expression (minute hour day-of-month month day-of-week)
read in an IANA time zone. croniter walks naive local wall-clock times, and this
module converts each one to UTC with zoneinfo. Given aware datetimes, croniter 7.0
runs a repeated time twice (01:30 EDT and 01:30 EST on New York's fall-back day),
which would bill twice. Every instant returned is an aware datetime in UTC.

Rules on top of croniter:

- A day of month that a month lacks (31 in April, 29-31 in a common February, 30
  in February) runs on that month's last day instead, and the next month returns to
  the configured day. Several configured days that fall on the same last day run
  once. This applies only when the day-of-month field is plain numbers (values,
  lists, ranges such as "15,31" or "28-31") and the day-of-week field is "*". In any
  other form croniter's meaning is kept, so a month without the day has no run: a
  step ("1-31/10"), "W", or a restricted day-of-week, which croniter combines with
  the day of month by OR as Vixie cron does.
- A local time that does not exist, because clocks spring forward, runs at the
  moment of the change: 02:30 on New York's spring-forward day runs at 03:00 EDT.
- A local time that occurs twice, because clocks fall back, runs once, at its first
  occurrence. An hourly schedule therefore has no run in the repeated hour.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from rebill.errors import InvalidInput

_RECORD = "schedule"
_FIELD_NAMES = "minute hour day-of-month month day-of-week"
_EXAMPLE = "'0 9 1 * *' for 09:00 on the first of each month"

# A day-of-month field made only of numbers, lists and ranges: "31", "15,31", "1-5,31".
_PLAIN_DAYS = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")

# croniter's random ("R") and hashed ("H") values would make runs depend on chance or
# on an id. Letters next to other letters ("thu", "mar") are month and weekday names.
_RANDOM_OR_HASHED = re.compile(r"(?<![a-z])[rh](?![a-z])", re.IGNORECASE)

_VALIDATION_START = datetime(2000, 1, 1, tzinfo=UTC)
_ALL_MONTHS = tuple(range(1, 13))
_MIN_DAYS_IN_MONTH = {2: 28, 4: 30, 6: 30, 9: 30, 11: 30}
_MAX_DAYS_IN_MONTH = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}


@dataclass(frozen=True)
class _Schedule:
    """A validated schedule split into the croniter expressions whose runs it joins.

    `exact` is the expression as configured, or None when none of its days exists in
    any of its months ("0 9 31 4 *"). `month_end` matches the last day of each month
    that can lack a configured day, or is None when the month-end rule does not
    apply or no month is short enough.
    """

    cron: str
    zone: ZoneInfo
    exact: str | None
    month_end: str | None


def validate_schedule(cron: str, timezone: str) -> None:
    """Raise InvalidInput unless `cron` is a valid 5-field expression that has runs.

    croniter searches 50 years ahead, and from 1901 to 2099 the calendar repeats
    every 28 years, so a search from a fixed date finds every expression that never
    matches.
    """
    next(_runs_after(_parse(cron, timezone), _VALIDATION_START))


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """Return the first scheduled instant strictly after `after`, in UTC.

    `after` may be in any time zone but must be aware. Raises InvalidInput for an
    invalid expression or time zone, or when croniter finds no run within 50 years.
    """
    return next(_runs_after(_parse(cron, timezone), after))


def upcoming_runs(
    cron: str, timezone: str, after: datetime, count: int
) -> list[datetime]:
    """Return the next `count` scheduled instants strictly after `after`, in UTC.

    The list is strictly increasing. Raises ValueError for a negative `count`.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    runs = _runs_after(_parse(cron, timezone), after)
    return [next(runs) for _ in range(count)]


def first_run_on_or_after(cron: str, timezone: str, start: datetime) -> datetime:
    """Return the first scheduled instant at or after `start`, in UTC.

    `start` itself is returned (in UTC) when it is a scheduled instant.
    """
    _require_aware("start", start)
    # datetime has microsecond resolution, so nothing lies between the two instants.
    return next_run(cron, timezone, start - timedelta(microseconds=1))


def catch_up(
    cron: str, timezone: str, next_billing_at: datetime, now: datetime
) -> tuple[datetime, datetime]:
    """Return the instant to bill now and the subscription's new next_billing_at.

    The instant to bill is `next_billing_at` itself, however late. The new
    next_billing_at is the first run strictly after `now`, so the runs missed in
    between are skipped and the subscription is charged for one period, not for each
    missed one. Raises ValueError when `next_billing_at` is later than `now`.
    """
    _require_aware("next_billing_at", next_billing_at)
    _require_aware("now", now)
    if next_billing_at > now:
        raise ValueError(
            f"next_billing_at {next_billing_at.isoformat()} is later than now "
            f"{now.isoformat()}: the subscription is not due yet, so do not bill it"
        )
    return next_billing_at.astimezone(UTC), next_run(cron, timezone, now)


def lateness(scheduled_at: datetime, now: datetime) -> timedelta:
    """Return `now - scheduled_at`, which is negative before the scheduled instant."""
    _require_aware("scheduled_at", scheduled_at)
    _require_aware("now", now)
    return now - scheduled_at


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} {value.isoformat()} is naive: pass an aware datetime, "
            "for example datetime.now(UTC)"
        )


def _parse(cron: str, timezone: str) -> _Schedule:
    zone = _load_zone(timezone)
    fields = _split_fields(cron)
    try:
        expanded = croniter.expand(cron)[0]
    except CroniterError as exc:
        raise _invalid_cron(cron, str(exc)) from None

    days, months, weekdays = expanded[2], expanded[3], expanded[4]
    months = _ALL_MONTHS if months == ["*"] else tuple(months)
    clamps = bool(_PLAIN_DAYS.fullmatch(fields[2])) and weekdays == ["*"]
    if not clamps or days == ["*"]:
        return _Schedule(cron, zone, exact=cron, month_end=None)

    month_end = _month_end_expression(fields, max(days), months)
    exists = any(day <= _MAX_DAYS_IN_MONTH.get(m, 31) for day in days for m in months)
    return _Schedule(cron, zone, exact=cron if exists else None, month_end=month_end)


def _load_zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            _RECORD,
            "timezone",
            f"unknown time zone {timezone!r}: use an IANA name such as "
            "'America/New_York' or 'UTC'",
        ) from None


def _split_fields(cron: str) -> list[str]:
    fields = cron.split()
    if len(fields) != 5:
        raise _invalid_cron(cron, f"it has {len(fields)} fields")
    if _RANDOM_OR_HASHED.search(cron):
        raise _invalid_cron(cron, "random (R) and hashed (H) values are not supported")
    return fields


def _invalid_cron(cron: str, reason: str) -> InvalidInput:
    return InvalidInput(
        _RECORD,
        "cron",
        f"invalid cron expression {cron!r}: {reason}. Expected 5 fields "
        f"({_FIELD_NAMES}), for example {_EXAMPLE}",
    )


def _month_end_expression(
    fields: list[str], max_day: int, months: tuple[int, ...]
) -> str | None:
    """Build the expression for the last day of each month that can lack `max_day`.

    Each month in it either lacks a configured day, or is a leap-year February with
    29 configured, whose last day the exact expression produces too. So every run of
    it belongs to the schedule.
    """
    short = [m for m in months if _MIN_DAYS_IN_MONTH.get(m, 31) < max_day]
    if not short:
        return None
    minute, hour = fields[0], fields[1]
    return f"{minute} {hour} L {','.join(map(str, short))} *"


def _runs_after(schedule: _Schedule, after: datetime) -> Iterator[datetime]:
    """Yield the schedule's instants strictly after `after`, in UTC, increasing.

    A later wall-clock time never converts to an earlier instant, because a time
    that does not exist maps to the moment of the change and a repeated time to its
    first occurrence. So no run before the wall-clock time of `after` can come later
    than `after`. Two wall-clock times can map to one instant (02:00 and 03:00 on New
    York's spring-forward day), and the instant is yielded once.
    """
    _require_aware("after", after)
    start = after.astimezone(schedule.zone).replace(tzinfo=None, fold=0)
    latest = after.astimezone(UTC)
    for wall_time in _wall_clock_runs(schedule, start):
        instant = _to_utc(wall_time, schedule.zone)
        if instant > latest:
            latest = instant
            yield instant


def _wall_clock_runs(schedule: _Schedule, start: datetime) -> Iterator[datetime]:
    """Yield the naive local times of the schedule's runs strictly after `start`.

    A time that both expressions produce comes twice, and `_runs_after` drops the
    second copy with the other instants that are not later than the last one.
    """
    sources = [
        _croniter_runs(schedule.cron, expression, start)
        for expression in (schedule.exact, schedule.month_end)
        if expression is not None
    ]
    return heapq.merge(*sources)


def _croniter_runs(cron: str, expression: str, start: datetime) -> Iterator[datetime]:
    iterator = croniter(expression, start)
    while True:
        try:
            yield iterator.get_next(datetime)
        except CroniterBadDateError:
            raise _invalid_cron(
                cron, f"it matches no date in the 50 years after {start:%Y-%m-%d}"
            ) from None


def _to_utc(wall_time: datetime, zone: ZoneInfo) -> datetime:
    """Convert a naive local time to UTC, picking the first of two occurrences.

    A local time that does not exist converts to the moment of the change. For such
    a time, fold=0 applies the offset from before the change, so the round trip
    comes back as a different wall-clock time, and fold=1 the offset from after it.
    """
    instant = wall_time.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall_time:
        return instant
    earliest = wall_time.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _offset_change(earliest, instant, zone)


def _offset_change(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """Return the instant at which `zone` leaves the UTC offset it has at `before`.

    The change must lie in (`before`, `after`]. The search bisects whole seconds,
    because the tz database puts every change on a whole second.
    """
    old_offset = before.astimezone(zone).utcoffset()
    low, high = before, after
    while high - low > timedelta(seconds=1):
        middle = low + timedelta(seconds=(high - low).total_seconds() // 2)
        if middle.astimezone(zone).utcoffset() == old_offset:
            low = middle
        else:
            high = middle
    return high
