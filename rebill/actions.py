"""Operator actions on cycles, subscriptions and stores.

The CLI and the web dashboard both call these. Each function takes a session,
`now` and the actor's name ("operator alice", "cli root"), changes the rows with
compare-and-set updates, writes one audit entry and returns what it did as an
ActionResult. It never commits: the caller does.

When a precondition does not hold, the function writes nothing and raises
ActionRejected (or RecordNotFound for an unknown id) with a message naming the
value and what to do instead. A cycle whose payment may have been taken (an
attempt ended unknown, pending, in flight or with an order problem) is never
charged again without reconciling it first: approve_cycle rejects it and
retry_cycle_now reads its order before anything else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import (
    CLAIMABLE_STATES,
    AuditEntry,
    BillingCycle,
    ChargeAttempt,
    CycleState,
    OutcomeClass,
    Store,
    Subscription,
    SubscriptionStatus,
)
from rebill import cycles
from rebill.client import BigCommerceClient
from rebill.decisions import DUPLICATE_TRANSACTION, Finding
from rebill.errors import ActionRejected, BigCommerceError, RecordNotFound
from scheduler.reconcile import OrderReading, inspect_order

logger = logging.getLogger(__name__)

ClientFactory = Callable[[Store], BigCommerceClient]

# Attempt outcomes after which a payment may exist.
POSSIBLY_CHARGED = (
    OutcomeClass.IN_FLIGHT,
    OutcomeClass.UNKNOWN,
    OutcomeClass.PENDING,
    OutcomeClass.ORDER_PROBLEM,
    OutcomeClass.PAID,
)
RETRYABLE_STATES = (
    CycleState.RETRY_SCHEDULED,
    CycleState.AWAITING_INSTRUMENT,
    CycleState.NEEDS_REVIEW,
    CycleState.UNKNOWN,
    CycleState.PENDING,
    CycleState.FAILED,
)
SKIPPABLE_STATES = (
    *CLAIMABLE_STATES,
    CycleState.AWAITING_INSTRUMENT,
    CycleState.NEEDS_REVIEW,
)


@dataclass(frozen=True)
class ActionResult:
    """Result of an action: its name and a message for the caller to show."""

    action: str
    message: str
    store_id: int | None = None
    subscription_id: int | None = None
    cycle_id: int | None = None


def approve_cycle(
    session: Session, cycle_id: int, *, now: datetime, actor: str
) -> ActionResult:
    """Release a cycle waiting in review (a late renewal) to be charged now."""
    cycle = get_cycle(session, cycle_id)
    target = f"cycle {cycle_id}"
    require_state(cycle, (CycleState.NEEDS_REVIEW,), "approve")
    require_chargeable(cycle)
    attempt = possibly_charged_attempt(session, cycle_id)
    if attempt is not None:
        raise ActionRejected(
            target,
            f"attempt {attempt.number} ended {attempt.outcome}, so a payment may "
            f"exist; run 'rebill cycles retry {cycle_id}', which reconciles first",
        )
    release(session, cycle, now, actor, expected=(CycleState.NEEDS_REVIEW,))
    return record(
        session,
        cycle,
        "approve_cycle",
        f"{target} approved; the scheduler queues it at its next tick",
        now,
        actor,
    )


def retry_cycle_now(
    session: Session,
    cycle_id: int,
    *,
    now: datetime,
    actor: str,
    client_for: ClientFactory,
) -> ActionResult:
    """Queue a failed or waiting cycle for one more attempt now.

    A cycle whose payment may exist is reconciled first through `client_for`:
    a payment found marks it paid instead, and a retry goes ahead only when the
    order has no payment. The order is rebuilt when it left Incomplete status.
    """
    cycle = get_cycle(session, cycle_id)
    target = f"cycle {cycle_id}"
    require_state(cycle, RETRYABLE_STATES, "retry")
    require_chargeable(cycle)
    rebuild = False
    if needs_reconcile(session, cycle):
        reading = reconcile_for_retry(session, cycle, client_for)
        if reading.finding is Finding.PAID:
            return mark_paid(session, cycle, reading.detail, now, actor)
        rebuild = reading.finding is Finding.UNPAYABLE
    release(
        session,
        cycle,
        now,
        actor,
        expected=(CycleState(cycle.state),),
        rebuild_order=rebuild,
    )
    detail = "; its order is created again" if rebuild else ""
    return record(
        session,
        cycle,
        "retry_cycle_now",
        f"{target} queued for a new attempt at the scheduler's next tick{detail}",
        now,
        actor,
    )


def skip_cycle(
    session: Session, cycle_id: int, *, now: datetime, actor: str
) -> ActionResult:
    """Bill nothing for this cycle; its subscription leaves dunning."""
    cycle = get_cycle(session, cycle_id)
    require_state(cycle, SKIPPABLE_STATES, "skip")
    moved = cycles.move_cycle(
        session,
        cycle.id,
        now,
        expected=(cycle.state,),
        state=CycleState.SKIPPED,
        next_attempt_at=None,
        review_reason=None,
        last_error_message=f"skipped by {actor}",
    )
    if not moved:
        raise changed_meanwhile(f"cycle {cycle_id}")
    leave_dunning(session, cycle.subscription_id, now)
    return record(session, cycle, "skip_cycle", f"cycle {cycle_id} skipped", now, actor)


def cancel_subscription(
    session: Session, subscription_id: int, *, now: datetime, actor: str
) -> ActionResult:
    """Cancel a subscription now and skip its cycles that wait to be charged.

    Cycles being charged or reconciled are left to finish, and a worker never
    sends a payment for a canceled subscription.
    """
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        raise RecordNotFound("subscription", subscription_id)
    if subscription.status == SubscriptionStatus.CANCELED:
        raise ActionRejected(
            f"subscription {subscription_id}", "the subscription is already canceled"
        )
    subscription.status = SubscriptionStatus.CANCELED
    subscription.updated_at = now
    skipped = cycles.rowcount(
        session.execute(
            sa.update(BillingCycle)
            .where(
                BillingCycle.subscription_id == subscription_id,
                BillingCycle.state.in_(SKIPPABLE_STATES),
            )
            .values(
                state=CycleState.SKIPPED,
                next_attempt_at=None,
                review_reason=None,
                last_error_message=f"subscription canceled by {actor}",
                updated_at=now,
            )
        )
    )
    message = (
        f"subscription {subscription_id} canceled; {skipped} open cycle(s) skipped"
    )
    audit(
        session,
        "cancel_subscription",
        message,
        now,
        actor,
        store_id=subscription.store_id,
        subscription_id=subscription_id,
    )
    return ActionResult(
        "cancel_subscription",
        message,
        store_id=subscription.store_id,
        subscription_id=subscription_id,
    )


def pause_store(
    session: Session, store_id: int, *, now: datetime, actor: str, reason: str
) -> ActionResult:
    """Stop charging every subscription of a store until resume_store."""
    store = get_store(session, store_id)
    target = f"store {store.store_hash}"
    if store.billing_paused:
        raise ActionRejected(
            target, f"billing is already paused ({store.billing_paused_reason})"
        )
    if not reason.strip():
        raise ActionRejected(target, "a reason is required to pause billing")
    paused = cycles.pause_store(
        session, store.id, f"paused by {actor}: {reason}", now, next_probe_at=None
    )
    if not paused:
        raise changed_meanwhile(target)
    message = f"{target} billing paused: {reason}"
    audit(session, "pause_store", message, now, actor, store_id=store.id)
    return ActionResult("pause_store", message, store_id=store.id)


def resume_store(
    session: Session, store_id: int, *, now: datetime, actor: str
) -> ActionResult:
    """Resume a paused store and release the cycles its pause held."""
    store = get_store(session, store_id)
    target = f"store {store.store_hash}"
    if not store.billing_paused:
        raise ActionRejected(target, "billing is not paused")
    released = cycles.resume_store(session, store.id, now)
    message = f"{target} billing resumed; {released} held cycle(s) released"
    audit(session, "resume_store", message, now, actor, store_id=store.id)
    return ActionResult("resume_store", message, store_id=store.id)


def get_cycle(session: Session, cycle_id: int) -> BillingCycle:
    cycle = session.get(BillingCycle, cycle_id)
    if cycle is None:
        raise RecordNotFound("cycle", cycle_id)
    return cycle


def get_store(session: Session, store_id: int) -> Store:
    store = session.get(Store, store_id)
    if store is None:
        raise RecordNotFound("store", store_id)
    return store


def store_id_for_hash(session: Session, store_hash: str) -> int:
    """Return the id of the store with this hash; RecordNotFound if none."""
    store_id = session.scalar(sa.select(Store.id).where(Store.store_hash == store_hash))
    if store_id is None:
        raise RecordNotFound("store", store_hash)
    return store_id


def require_state(cycle: BillingCycle, allowed: tuple[str, ...], verb: str) -> None:
    if cycle.state not in allowed:
        raise ActionRejected(
            f"cycle {cycle.id}",
            f"cannot {verb} a cycle that is {cycle.state}; only "
            f"{', '.join(allowed)} cycles can be",
        )


def require_chargeable(cycle: BillingCycle) -> None:
    """Reject charging a cycle whose subscription or store must not be charged."""
    subscription = cycle.subscription
    if subscription.status not in cycles.CHARGEABLE_SUBSCRIPTIONS:
        raise ActionRejected(
            f"cycle {cycle.id}",
            f"subscription {subscription.id} is {subscription.status}; resume it "
            "before charging this cycle",
        )
    store = subscription.store
    if store.billing_paused:
        raise ActionRejected(
            f"cycle {cycle.id}",
            f"store {store.store_hash} billing is paused "
            f"({store.billing_paused_reason}); run 'rebill stores resume "
            f"{store.store_hash}' first",
        )


def possibly_charged_attempt(session: Session, cycle_id: int) -> ChargeAttempt | None:
    """Return the last attempt after which a payment may exist, if any."""
    return session.scalars(
        sa.select(ChargeAttempt)
        .where(
            ChargeAttempt.cycle_id == cycle_id,
            ChargeAttempt.outcome.in_(POSSIBLY_CHARGED),
        )
        .order_by(ChargeAttempt.number.desc())
        .limit(1)
    ).first()


def needs_reconcile(session: Session, cycle: BillingCycle) -> bool:
    if cycle.state in (CycleState.UNKNOWN, CycleState.PENDING):
        return True
    return possibly_charged_attempt(session, cycle.id) is not None


def reconcile_for_retry(
    session: Session, cycle: BillingCycle, client_for: ClientFactory
) -> OrderReading:
    """Read the cycle's order, rejecting a retry unless no payment can exist."""
    target = f"cycle {cycle.id}"
    if duplicate_reported(session, cycle.id):
        raise ActionRejected(
            target,
            f"BigCommerce reported a duplicate transaction (code "
            f"{DUPLICATE_TRANSACTION}); confirm the payment with BigCommerce, then "
            "skip the cycle or leave it in review",
        )
    if cycle.order_id is None:
        raise ActionRejected(target, "the cycle has no order to reconcile")
    try:
        reading = inspect_order(client_for(cycle.subscription.store), cycle.order_id)
    except BigCommerceError as error:
        raise ActionRejected(
            target, f"reconciliation failed, so nothing was retried: {error}"
        ) from None
    if reading.finding in (Finding.PENDING, Finding.MARKED_PAID, Finding.UNRESOLVED):
        raise ActionRejected(
            target, f"not retried: {reading.detail}; check the order first"
        )
    return reading


def duplicate_reported(session: Session, cycle_id: int) -> bool:
    found = session.scalar(
        sa.select(ChargeAttempt.id).where(
            ChargeAttempt.cycle_id == cycle_id,
            ChargeAttempt.error_code == DUPLICATE_TRANSACTION,
        )
    )
    return found is not None


def release(
    session: Session,
    cycle: BillingCycle,
    now: datetime,
    actor: str,
    *,
    expected: tuple[str, ...],
    rebuild_order: bool = False,
) -> None:
    """Make the cycle due for an attempt now, approved so it is not held as late."""
    values: dict[str, object] = {
        "next_attempt_at": now,
        "queued_at": None,
        "approved_at": now,
        "approved_by": actor,
        "review_reason": None,
        "wait_started_at": None,
        "wait_checks": 0,
    }
    if rebuild_order:
        values["order_id"] = None
        values["order_rebuilds"] = BillingCycle.order_rebuilds + 1
    moved = cycles.move_cycle(
        session,
        cycle.id,
        now,
        expected=expected,
        state=CycleState.RETRY_SCHEDULED,
        **values,
    )
    if not moved:
        raise changed_meanwhile(f"cycle {cycle.id}")


def mark_paid(
    session: Session, cycle: BillingCycle, detail: str, now: datetime, actor: str
) -> ActionResult:
    moved = cycles.move_cycle(
        session,
        cycle.id,
        now,
        expected=(cycle.state,),
        state=CycleState.PAID,
        paid_at=now,
        next_attempt_at=None,
        review_reason=None,
        last_outcome=OutcomeClass.PAID,
        last_error_message=None,
    )
    if not moved:
        raise changed_meanwhile(f"cycle {cycle.id}")
    leave_dunning(session, cycle.subscription_id, now)
    return record(
        session,
        cycle,
        "retry_cycle_now",
        f"cycle {cycle.id} not retried: {detail}; marked paid",
        now,
        actor,
    )


def leave_dunning(session: Session, subscription_id: int, now: datetime) -> None:
    session.execute(
        sa.update(Subscription)
        .where(
            Subscription.id == subscription_id,
            Subscription.status == SubscriptionStatus.PAST_DUE,
        )
        .values(status=SubscriptionStatus.ACTIVE, updated_at=now)
    )


def changed_meanwhile(target: str) -> ActionRejected:
    return ActionRejected(
        target, "it changed while the action ran; reload it and try again"
    )


def record(
    session: Session,
    cycle: BillingCycle,
    action: str,
    message: str,
    now: datetime,
    actor: str,
) -> ActionResult:
    audit(
        session,
        action,
        message,
        now,
        actor,
        store_id=cycle.store_id,
        subscription_id=cycle.subscription_id,
        cycle_id=cycle.id,
    )
    return ActionResult(
        action,
        message,
        store_id=cycle.store_id,
        subscription_id=cycle.subscription_id,
        cycle_id=cycle.id,
    )


def audit(
    session: Session,
    action: str,
    message: str,
    now: datetime,
    actor: str,
    *,
    store_id: int | None = None,
    subscription_id: int | None = None,
    cycle_id: int | None = None,
) -> None:
    session.add(
        AuditEntry(
            created_at=now,
            actor=actor,
            action=action,
            store_id=store_id,
            subscription_id=subscription_id,
            cycle_id=cycle_id,
            result="ok",
            detail=message,
        )
    )
    session.flush()
    logger.info("%s: %s", actor, message)
