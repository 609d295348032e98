"""Compare-and-set state changes of billing cycles and charge attempts.

Every change that decides whether money may move is a single UPDATE guarded by
the state it expects, so two workers, or a worker and the scheduler, can never
both win. These helpers take a session and never commit: the caller commits
before doing anything that depends on the change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import (
    CLAIMABLE_STATES,
    BillingCycle,
    ChargeAttempt,
    CycleState,
    OutcomeClass,
)


def claim_cycle(session: Session, cycle: BillingCycle, now: datetime) -> int | None:
    """Move a claimable cycle to CHARGING and open an attempt for it.

    Returns the new attempt's id, or None when another worker claimed the
    cycle first or it is no longer claimable.
    """
    seen_count = cycle.attempt_count
    claimed = session.execute(
        sa.update(BillingCycle)
        .where(
            BillingCycle.id == cycle.id,
            BillingCycle.state.in_(CLAIMABLE_STATES),
            BillingCycle.attempt_count == seen_count,
        )
        .values(
            state=CycleState.CHARGING,
            attempt_count=seen_count + 1,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    if rowcount(claimed) != 1:
        return None
    attempt = ChargeAttempt(cycle_id=cycle.id, number=seen_count + 1, started_at=now)
    session.add(attempt)
    session.flush()
    return attempt.id


def mark_payment_sent(
    session: Session,
    attempt_id: int,
    now: datetime,
    *,
    payment_method_id: str,
    instrument_type: str,
    instrument_brand: str | None,
    instrument_last4: str | None,
) -> bool:
    """Record that the payment request is about to leave.

    Returns False when the attempt was ended meanwhile (the scheduler gave up on
    a worker it thought dead): the caller must then not send the payment.
    """
    marked = session.execute(
        sa.update(ChargeAttempt)
        .where(
            ChargeAttempt.id == attempt_id,
            ChargeAttempt.outcome == OutcomeClass.IN_FLIGHT,
            ChargeAttempt.payment_sent_at.is_(None),
        )
        .values(
            payment_sent_at=now,
            payment_method_id=payment_method_id,
            instrument_type=instrument_type,
            instrument_brand=instrument_brand,
            instrument_last4=instrument_last4,
        )
    )
    return rowcount(marked) == 1


def finish_attempt(
    session: Session,
    attempt_id: int,
    now: datetime,
    *,
    outcome: OutcomeClass,
    http_status: int | None = None,
    error_code: int | None = None,
    message: str | None = None,
    transaction_id: str | None = None,
) -> bool:
    """Close an attempt that is still in flight; returns False if it was closed."""
    finished = session.execute(
        sa.update(ChargeAttempt)
        .where(
            ChargeAttempt.id == attempt_id,
            ChargeAttempt.outcome == OutcomeClass.IN_FLIGHT,
        )
        .values(
            outcome=outcome,
            finished_at=now,
            http_status=http_status,
            error_code=error_code,
            message=message,
            transaction_id=transaction_id,
        )
    )
    return rowcount(finished) == 1


def move_cycle(
    session: Session,
    cycle_id: int,
    now: datetime,
    *,
    expected: tuple[str, ...],
    state: CycleState,
    **values: object,
) -> bool:
    """Set a cycle's state if it is still in one of `expected`."""
    moved = session.execute(
        sa.update(BillingCycle)
        .where(BillingCycle.id == cycle_id, BillingCycle.state.in_(expected))
        .values(state=state, updated_at=now, **values)
    )
    return rowcount(moved) == 1


def set_order(session: Session, cycle_id: int, order_id: int) -> None:
    """Store the cycle's order id; a cycle keeps its first order for every retry."""
    session.execute(
        sa.update(BillingCycle)
        .where(BillingCycle.id == cycle_id, BillingCycle.order_id.is_(None))
        .values(order_id=order_id)
    )


def rowcount(result: sa.Result[Any]) -> int:
    """Rows matched by an UPDATE."""
    return cast(sa.CursorResult[Any], result).rowcount
