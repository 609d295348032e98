"""One scheduler tick: open cycles for due subscriptions and queue renewals.

A tick only talks to the database and the broker, so it stays fast whatever
BigCommerce's rate limits are; the worker creates each cycle's order. Two
schedulers running at once are harmless: due rows are locked with SKIP LOCKED
on PostgreSQL, and the unique (subscription, scheduled time) key of
billing_cycles lets a second insert of the same renewal do nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models import (
    DUNNING_STATES,
    BillingCycle,
    ChargeAttempt,
    CycleState,
    OutcomeClass,
    Store,
    Subscription,
    SubscriptionStatus,
)
from rebill import cycles
from rebill.runtime import Runtime
from rebill.subscription_changes import ends_before_renewal
from scheduler.reconcile import CheckResult, run_checks
from scheduler.schedule import catch_up

logger = logging.getLogger(__name__)

Enqueue = Callable[[int], None]


@dataclass
class TickResult:
    opened: list[int] = field(default_factory=list)  # new cycle ids
    queued: int = 0
    recovered: int = 0
    checks: CheckResult = field(default_factory=CheckResult)

    def __str__(self) -> str:
        return (
            f"{len(self.opened)} cycle(s) opened, {self.queued} renewal(s) queued, "
            f"{self.recovered} stalled renewal(s) recovered, {self.checks}"
        )


def tick(runtime: Runtime, now: datetime, enqueue: Enqueue) -> TickResult:
    """Run one tick at `now`."""
    result = TickResult()
    while True:
        with runtime.sessions() as session:
            opened = open_due_cycles(
                session, now, runtime.settings.scheduler_batch_size
            )
            session.commit()
        result.opened.extend(opened)
        if len(opened) < runtime.settings.scheduler_batch_size:
            break
    with runtime.sessions() as session:
        result.recovered = recover_stalled(
            session, now, timedelta(seconds=runtime.settings.charge_lease)
        )
        session.commit()
    result.checks = run_checks(runtime, now)
    result.queued = queue_ready(
        runtime, now, timedelta(seconds=runtime.settings.requeue_after), enqueue
    )
    logger.info("scheduler tick at %s: %s", now.isoformat(), result)
    return result


def open_due_cycles(session: Session, now: datetime, batch_size: int) -> list[int]:
    """Claim up to `batch_size` due subscriptions; return the new cycle ids.

    Returns fewer ids than subscriptions claimed when a cycle for the same
    scheduled time already existed. A subscription with a cycle in dunning and
    the subscriptions of a store whose billing is paused stay due: their next
    renewal opens once the dunning cycle or the pause ends.
    """
    in_dunning = (
        sa.select(BillingCycle.id)
        .where(
            BillingCycle.subscription_id == Subscription.id,
            BillingCycle.state.in_(DUNNING_STATES),
        )
        .exists()
    )
    store_paused = (
        sa.select(Store.id)
        .where(Store.id == Subscription.store_id, Store.billing_paused.is_(True))
        .exists()
    )
    due = session.scalars(
        sa.select(Subscription)
        .where(
            Subscription.status == SubscriptionStatus.ACTIVE,
            Subscription.next_billing_at <= now,
            ~in_dunning,
            ~store_paused,
        )
        .order_by(Subscription.next_billing_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    if not due:
        return []
    rows = []
    for subscription in due:
        if ends_before_renewal(subscription):
            subscription.status = SubscriptionStatus.CANCELED
            logger.info("subscription %d: canceled at period end", subscription.id)
            continue
        bill_at, following = catch_up(
            subscription.cron, subscription.timezone, subscription.next_billing_at, now
        )
        rows.append(cycle_row(subscription, bill_at, now))
        subscription.next_billing_at = following
    if not rows:
        return []
    opened = insert_cycles(session, rows)
    logger.info("opened %d cycle(s) for %d due subscription(s)", len(opened), len(due))
    return opened


def cycle_row(subscription: Subscription, bill_at: datetime, now: datetime) -> dict:
    return {
        "subscription_id": subscription.id,
        "store_id": subscription.store_id,
        "scheduled_at": bill_at,
        "amount_minor": subscription.amount_minor,
        "currency": subscription.currency,
        "state": CycleState.DUE,
        "attempt_count": 0,
        "decline_count": 0,
        "created_at": now,
        "updated_at": now,
    }


def insert_cycles(session: Session, rows: Sequence[dict]) -> list[int]:
    """Insert cycles, skipping any that exist; return the ids actually inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(BillingCycle)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["subscription_id", "scheduled_at"])
        .returning(BillingCycle.id)
    )
    return list(session.scalars(statement).all())


def recover_stalled(session: Session, now: datetime, lease: timedelta) -> int:
    """End attempts whose worker vanished (crash, SIGKILL) mid-renewal.

    An attempt that never marked its payment as sent certainly moved no money,
    so its cycle is retried; one that did goes to UNKNOWN and is reconciled in
    the same tick.
    """
    stalled = session.execute(
        sa.select(BillingCycle.id, ChargeAttempt.id, ChargeAttempt.payment_sent_at)
        .join(ChargeAttempt, ChargeAttempt.cycle_id == BillingCycle.id)
        .where(
            BillingCycle.state == CycleState.CHARGING,
            BillingCycle.updated_at < now - lease,
            ChargeAttempt.number == BillingCycle.attempt_count,
            ChargeAttempt.outcome == OutcomeClass.IN_FLIGHT,
        )
    ).all()
    for cycle_id, attempt_id, sent_at in stalled:
        recover_one(session, cycle_id, attempt_id, sent_at, now)
    return len(stalled)


def recover_one(
    session: Session,
    cycle_id: int,
    attempt_id: int,
    sent_at: datetime | None,
    now: datetime,
) -> None:
    message = "worker stopped before sending the payment"
    if sent_at is None and cycles.finish_attempt(
        session, attempt_id, now, outcome=OutcomeClass.NOT_CHARGED, message=message
    ):
        cycles.move_cycle(
            session,
            cycle_id,
            now,
            expected=(CycleState.CHARGING,),
            state=CycleState.RETRY_SCHEDULED,
            next_attempt_at=now,
            last_error_message=message,
        )
        logger.warning("cycle %d: %s; retry scheduled", cycle_id, message)
        return
    message = "worker stopped after sending the payment; outcome unknown"
    cycles.finish_attempt(
        session, attempt_id, now, outcome=OutcomeClass.UNKNOWN, message=message
    )
    cycles.move_cycle(
        session,
        cycle_id,
        now,
        expected=(CycleState.CHARGING,),
        state=CycleState.UNKNOWN,
        last_outcome=OutcomeClass.UNKNOWN,
        last_error_message=message,
        next_attempt_at=now,
        wait_started_at=now,
        wait_checks=0,
    )
    logger.error("cycle %d: %s; reconciliation needed", cycle_id, message)


def ready_to_queue(now: datetime, requeue_after: timedelta) -> sa.ColumnElement[bool]:
    """Cycles a worker should pick up now and that are not waiting in the queue.

    A store whose billing is paused has only its probe cycle queued.
    """
    not_queued_lately = sa.or_(
        BillingCycle.queued_at.is_(None),
        BillingCycle.queued_at < now - requeue_after,
    )
    fresh = sa.and_(
        BillingCycle.state.in_((CycleState.DUE, CycleState.ORDER_CREATED)),
        not_queued_lately,
    )
    retry = sa.and_(
        BillingCycle.state == CycleState.RETRY_SCHEDULED,
        BillingCycle.next_attempt_at <= now,
        sa.or_(
            not_queued_lately,
            BillingCycle.queued_at < BillingCycle.next_attempt_at,
        ),
    )
    billing = (
        sa.select(Store.id)
        .where(
            Store.id == BillingCycle.store_id,
            sa.or_(
                Store.billing_paused.is_(False),
                Store.probe_cycle_id == BillingCycle.id,
            ),
        )
        .exists()
    )
    return sa.and_(sa.or_(fresh, retry), billing)


def queue_ready(
    runtime: Runtime, now: datetime, requeue_after: timedelta, enqueue: Enqueue
) -> int:
    """Queue every ready cycle, marking each queued once the broker took it."""
    with runtime.sessions() as session:
        ids = session.scalars(
            sa.select(BillingCycle.id)
            .where(ready_to_queue(now, requeue_after))
            .order_by(BillingCycle.id)
        ).all()
    queued: list[int] = []
    try:
        for cycle_id in ids:
            enqueue(cycle_id)
            queued.append(cycle_id)
    finally:
        mark_queued(runtime, queued, now)
    return len(queued)


def mark_queued(runtime: Runtime, cycle_ids: Sequence[int], now: datetime) -> None:
    with runtime.sessions() as session:
        for start in range(0, len(cycle_ids), 500):
            session.execute(
                sa.update(BillingCycle)
                .where(BillingCycle.id.in_(cycle_ids[start : start + 500]))
                .values(queued_at=now)
            )
        session.commit()
