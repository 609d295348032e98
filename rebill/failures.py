"""Query the cycles that are not paid, for `rebill failures` and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import BillingCycle, CycleState, Store


@dataclass(frozen=True)
class FailureRow:
    """One cycle that is not paid, with what an operator needs to act on it."""

    cycle_id: int
    store_hash: str
    subscription_id: int
    order_id: int | None
    state: str
    last_outcome: str | None
    last_error_code: int | None
    message: str | None
    attempts: int
    next_attempt_at: datetime | None
    scheduled_at: datetime

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        for name in ("next_attempt_at", "scheduled_at"):
            if values[name] is not None:
                values[name] = values[name].isoformat()
        return values


def list_failures(
    session: Session,
    *,
    store_hash: str | None = None,
    codes: Sequence[int] = (),
    states: Sequence[str] = (),
    limit: int | None = None,
) -> list[FailureRow]:
    """Return the cycles that are not paid, oldest scheduled first.

    Filters combine: a store, any of `codes` (the last error code) and any of
    `states`. The message is the review reason for a cycle in review, else the
    last error message.
    """
    query = (
        sa.select(BillingCycle, Store.store_hash)
        .join(Store, Store.id == BillingCycle.store_id)
        .where(BillingCycle.state != CycleState.PAID)
        .order_by(BillingCycle.scheduled_at, BillingCycle.id)
    )
    if store_hash is not None:
        query = query.where(Store.store_hash == store_hash)
    if codes:
        query = query.where(BillingCycle.last_error_code.in_(codes))
    if states:
        query = query.where(BillingCycle.state.in_(states))
    if limit is not None:
        query = query.limit(limit)
    return [failure_row(cycle, hash_) for cycle, hash_ in session.execute(query)]


def failure_row(cycle: BillingCycle, store_hash: str) -> FailureRow:
    return FailureRow(
        cycle_id=cycle.id,
        store_hash=store_hash,
        subscription_id=cycle.subscription_id,
        order_id=cycle.order_id,
        state=cycle.state,
        last_outcome=cycle.last_outcome,
        last_error_code=cycle.last_error_code,
        message=cycle.review_reason or cycle.last_error_message,
        attempts=cycle.attempt_count,
        next_attempt_at=cycle.next_attempt_at,
        scheduled_at=cycle.scheduled_at,
    )
