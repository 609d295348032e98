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
    Store,
    Subscription,
    SubscriptionStatus,
)
from rebill.decisions import Decision

# A subscription in one of these states may be charged. The others were paused
# or canceled, which neither a worker nor a decision may undo.
CHARGEABLE_SUBSCRIPTIONS = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


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
    subscription_id: int,
    now: datetime,
    *,
    payment_method_id: str,
    instrument_type: str,
    instrument_brand: str | None,
    instrument_last4: str | None,
    instrument_fingerprint: str,
) -> bool:
    """Record that the payment request is about to leave.

    Returns False when the attempt was ended meanwhile (the scheduler gave up on
    a worker it thought dead) or the subscription is no longer active or past
    due (paused or canceled while the renewal waited): the caller must then not
    send the payment. Both checks are part of the same UPDATE.
    """
    chargeable = (
        sa.select(Subscription.id)
        .where(
            Subscription.id == subscription_id,
            Subscription.status.in_(CHARGEABLE_SUBSCRIPTIONS),
        )
        .exists()
    )
    marked = session.execute(
        sa.update(ChargeAttempt)
        .where(
            ChargeAttempt.id == attempt_id,
            ChargeAttempt.outcome == OutcomeClass.IN_FLIGHT,
            ChargeAttempt.payment_sent_at.is_(None),
            chargeable,
        )
        .values(
            payment_sent_at=now,
            payment_method_id=payment_method_id,
            instrument_type=instrument_type,
            instrument_brand=instrument_brand,
            instrument_last4=instrument_last4,
            instrument_fingerprint=instrument_fingerprint,
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


def apply_decision(
    session: Session,
    cycle_id: int,
    decision: Decision,
    now: datetime,
    *,
    expected: tuple[str, ...],
    wait_checks: int | None = None,
    **values: object,
) -> bool:
    """Apply `decision` to a cycle that is still in one of `expected`.

    `wait_checks`, when given, must also match, so two schedulers that checked
    the same cycle at once apply one decision between them. `values` are extra
    columns to set, such as the last error code.
    """
    changes: dict[str, object] = {
        # A queued message for the old state is obsolete: the scheduler queues
        # the cycle again when next_attempt_at comes.
        "queued_at": None,
        "next_attempt_at": decision.next_attempt_at,
        "wait_started_at": decision.wait_started_at,
        "wait_checks": decision.wait_checks,
        "review_reason": (
            decision.reason if decision.state is CycleState.NEEDS_REVIEW else None
        ),
        **values,
    }
    if decision.state is not CycleState.PAID:
        changes["last_error_message"] = decision.reason
    if decision.rebuild_order:
        changes["order_id"] = None
        changes["order_rebuilds"] = BillingCycle.order_rebuilds + 1
    statement = (
        sa.update(BillingCycle)
        .where(BillingCycle.id == cycle_id, BillingCycle.state.in_(expected))
        .values(state=decision.state, updated_at=now, **changes)
    )
    if wait_checks is not None:
        statement = statement.where(BillingCycle.wait_checks == wait_checks)
    return rowcount(session.execute(statement)) == 1


def set_subscription_status(
    session: Session,
    subscription_id: int,
    status: SubscriptionStatus,
    now: datetime,
) -> bool:
    """Set the status of a subscription that is active or past due."""
    changed = session.execute(
        sa.update(Subscription)
        .where(
            Subscription.id == subscription_id,
            Subscription.status.in_(CHARGEABLE_SUBSCRIPTIONS),
            Subscription.status != status,
        )
        .values(status=status, updated_at=now)
    )
    return rowcount(changed) == 1


def pause_store(
    session: Session,
    store_id: int,
    reason: str,
    now: datetime,
    *,
    next_probe_at: datetime | None,
) -> bool:
    """Pause a store's billing; returns False if it was paused already.

    A pause with `next_probe_at` is probed by the scheduler; one without lasts
    until resume_store.
    """
    paused = session.execute(
        sa.update(Store)
        .where(Store.id == store_id, Store.billing_paused.is_(False))
        .values(
            billing_paused=True,
            billing_paused_reason=reason,
            billing_paused_at=now,
            next_probe_at=next_probe_at,
            probe_count=0,
            probe_cycle_id=None,
        )
    )
    return rowcount(paused) == 1


def resume_store(session: Session, store_id: int, now: datetime) -> int:
    """Resume a paused store and release the cycles its pause held.

    Returns the number of cycles released. A held cycle gets next_attempt_at =
    `now`, so the scheduler queues it at once and the stale-renewal check
    measures lateness from the resume. Retries scheduled for later keep their
    time.
    """
    session.execute(
        sa.update(Store)
        .where(Store.id == store_id)
        .values(
            billing_paused=False,
            billing_paused_reason=None,
            billing_paused_at=None,
            next_probe_at=None,
            probe_count=0,
            probe_cycle_id=None,
        )
    )
    released = session.execute(
        sa.update(BillingCycle)
        .where(
            BillingCycle.store_id == store_id,
            BillingCycle.state.in_(CLAIMABLE_STATES),
            sa.or_(
                BillingCycle.next_attempt_at.is_(None),
                BillingCycle.next_attempt_at <= now,
            ),
        )
        .values(next_attempt_at=now, queued_at=None, updated_at=now)
    )
    return rowcount(released)


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
