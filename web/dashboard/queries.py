"""Read-only queries behind the dashboard pages; each takes `now` as an argument."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import (
    DUNNING_STATES,
    BillingCycle,
    ChargeAttempt,
    CycleState,
    Store,
    Subscription,
)
from rebill.actions import RETRYABLE_STATES

# Renewals that did not end paid or skipped and may need an operator, which are
# the states that "retry now" accepts.
FAILURE_STATES = RETRYABLE_STATES
# The overview's groups of today's renewals, in display order.
TODAY_GROUPS = {
    "paid": (CycleState.PAID,),
    "failed": (CycleState.FAILED,),
    "in dunning": DUNNING_STATES,
    "unknown": (CycleState.UNKNOWN, CycleState.PENDING),
    "in review": (CycleState.NEEDS_REVIEW,),
    "in progress": (CycleState.DUE, CycleState.ORDER_CREATED, CycleState.CHARGING),
    "skipped": (CycleState.SKIPPED,),
}
# Failure list age filters: label -> (minimum age, maximum age) since scheduled.
AGE_FILTERS: dict[str, tuple[timedelta | None, timedelta | None]] = {
    "1d": (None, timedelta(days=1)),
    "7d": (None, timedelta(days=7)),
    "30d": (None, timedelta(days=30)),
    "older": (timedelta(days=30), None),
}
RECOVERY_WEEKS = 8
PAGE_SIZE = 50


def today_counts(session: Session, now: datetime) -> dict[str, int]:
    """Count renewals scheduled today (UTC) by overview group."""
    start = datetime.combine(now.date(), time(), tzinfo=now.tzinfo)
    rows = session.execute(
        sa.select(BillingCycle.state, sa.func.count())
        .where(BillingCycle.scheduled_at >= start)
        .where(BillingCycle.scheduled_at < start + timedelta(days=1))
        .group_by(BillingCycle.state)
    )
    by_state = {state: count for state, count in rows}
    return {
        group: sum(by_state.get(state, 0) for state in states)
        for group, states in TODAY_GROUPS.items()
    }


@dataclass
class RecoveryRow:
    """Per error code, how many renewals that hit it were paid in the end, by week."""

    code: int
    weeks: dict[datetime, tuple[int, int]] = field(default_factory=dict)

    def rate(self, week: datetime) -> str:
        recovered, total = self.weeks.get(week, (0, 0))
        if total == 0:
            return "–"
        return f"{100 * recovered // total}% ({recovered}/{total})"


def week_starts(now: datetime, weeks: int = RECOVERY_WEEKS) -> list[datetime]:
    """Return the Monday 00:00 UTC of this week and the weeks before, oldest first."""
    monday = datetime.combine(
        now.date() - timedelta(days=now.weekday()), time(), tzinfo=now.tzinfo
    )
    return [monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]


def recovery_by_code(
    session: Session, now: datetime
) -> tuple[list[datetime], list[RecoveryRow]]:
    """Return the weeks and, per error code, renewals recovered (paid) of those failed.

    A renewal counts once per code that any of its attempts got, in the week
    of its scheduled time.
    """
    weeks = week_starts(now)
    pairs = session.execute(
        sa.select(
            ChargeAttempt.error_code, BillingCycle.scheduled_at, BillingCycle.state
        )
        .join(BillingCycle, ChargeAttempt.cycle_id == BillingCycle.id)
        .where(ChargeAttempt.error_code.is_not(None))
        .where(BillingCycle.scheduled_at >= weeks[0])
        .distinct()
    )
    counts: dict[int, dict[datetime, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0])
    )
    for code, scheduled_at, state in pairs:
        assert code is not None
        week = weeks[min((scheduled_at - weeks[0]).days // 7, len(weeks) - 1)]
        cell = counts[code][week]
        cell[1] += 1
        if state == CycleState.PAID:
            cell[0] += 1
    rows = [
        RecoveryRow(code, {week: (cell[0], cell[1]) for week, cell in by_week.items()})
        for code, by_week in sorted(counts.items())
    ]
    return weeks, rows


@dataclass(frozen=True)
class FailureFilters:
    store: str = ""
    code: int | None = None
    outcome: str = ""
    age: str = ""
    after: int = 0  # show renewals with a smaller id (newest first)


def failures(
    session: Session, filters: FailureFilters, now: datetime
) -> list[tuple[BillingCycle, str]]:
    """Return up to PAGE_SIZE failed renewals, newest first, with their store hash."""
    query = (
        sa.select(BillingCycle, Store.store_hash)
        .join(Store, BillingCycle.store_id == Store.id)
        .where(BillingCycle.state.in_(FAILURE_STATES))
        .order_by(BillingCycle.id.desc())
        .limit(PAGE_SIZE)
    )
    if filters.store:
        query = query.where(Store.store_hash == filters.store)
    if filters.code is not None:
        query = query.where(BillingCycle.last_error_code == filters.code)
    if filters.outcome:
        query = query.where(BillingCycle.last_outcome == filters.outcome)
    if filters.after:
        query = query.where(BillingCycle.id < filters.after)
    youngest, oldest = AGE_FILTERS.get(filters.age, (None, None))
    if youngest is not None:
        query = query.where(BillingCycle.scheduled_at <= now - youngest)
    if oldest is not None:
        query = query.where(BillingCycle.scheduled_at >= now - oldest)
    return [(cycle, store_hash) for cycle, store_hash in session.execute(query)]


def store_hashes(session: Session) -> list[str]:
    return list(session.scalars(sa.select(Store.store_hash).order_by(Store.store_hash)))


@dataclass(frozen=True)
class StoreRow:
    store: Store
    subscriptions: int
    waiting: int  # renewals that a worker should pick up now
    failing: int


def store_rows(session: Session, now: datetime) -> list[StoreRow]:
    rows = session.execute(
        sa.select(Subscription.store_id, sa.func.count()).group_by(
            Subscription.store_id
        )
    )
    subscriptions = {store_id: count for store_id, count in rows}
    ready = sa.or_(
        BillingCycle.state.in_((CycleState.DUE, CycleState.ORDER_CREATED)),
        sa.and_(
            BillingCycle.state == CycleState.RETRY_SCHEDULED,
            BillingCycle.next_attempt_at <= now,
        ),
    )
    waiting = _count_by_store(session, ready)
    failing = _count_by_store(session, BillingCycle.state.in_(FAILURE_STATES))
    stores = session.scalars(sa.select(Store).order_by(Store.store_hash))
    return [
        StoreRow(
            store,
            subscriptions.get(store.id, 0),
            waiting.get(store.id, 0),
            failing.get(store.id, 0),
        )
        for store in stores
    ]


def _count_by_store(
    session: Session, condition: sa.ColumnElement[bool]
) -> dict[int, int]:
    rows = session.execute(
        sa.select(BillingCycle.store_id, sa.func.count())
        .where(condition)
        .group_by(BillingCycle.store_id)
    )
    return {store_id: count for store_id, count in rows}
