"""What an operator can do to a renewal or a store from the dashboard.

Renewal actions change the cycle with a compare-and-set UPDATE
(rebill.cycles.move_cycle), so an action cannot race a worker that claims the
same cycle. Each returns an ActionResult, whose message the dashboard shows and
the audit log keeps. Actions take a session and never commit, so the caller
commits the change together with its audit entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from models import BillingCycle, CycleState, Store, Subscription
from rebill import cycles
from rebill.client import BigCommerceClient
from rebill.errors import BigCommerceError
from rebill.subscription_changes import cancel_now

logger = logging.getLogger(__name__)

# Order status 0 is Incomplete: BigCommerce has taken no payment for the order.
INCOMPLETE_ORDER_STATUS = 0
# Transaction statuses that mean money was taken or may still be taken.
PAYMENT_TRANSACTION_STATUSES = frozenset({"ok", "success", "pending"})
# States a retry may start from. A cycle that is charging belongs to a worker.
RETRYABLE_STATES = (
    CycleState.FAILED,
    CycleState.NEEDS_REVIEW,
    CycleState.UNKNOWN,
    CycleState.RETRY_SCHEDULED,
)
SKIPPABLE_STATES = (
    CycleState.DUE,
    CycleState.ORDER_CREATED,
    CycleState.RETRY_SCHEDULED,
    CycleState.NEEDS_REVIEW,
)


@dataclass(frozen=True)
class ActionResult:
    changed: bool
    message: str


ClientFor = Callable[[Store], BigCommerceClient]


def retry_now(
    session: Session, cycle: BillingCycle, now: datetime, client_for: ClientFor
) -> ActionResult:
    """Make the renewal claimable at once, after checking that nothing was paid.

    A renewal with an order is reconciled first: the order must still be
    Incomplete and carry no successful or pending transaction. Otherwise, or
    when BigCommerce cannot be asked, nothing changes.
    """
    if cycle.state not in RETRYABLE_STATES:
        return ActionResult(False, f"not retried: the renewal is {cycle.state}")
    if cycle.order_id is not None:
        problem = reconcile_problem(cycle, client_for(cycle.subscription.store))
        if problem is not None:
            return ActionResult(False, f"not retried: {problem}")
    moved = cycles.move_cycle(
        session,
        cycle.id,
        now,
        expected=RETRYABLE_STATES,
        state=CycleState.RETRY_SCHEDULED,
        next_attempt_at=now,
        queued_at=None,
    )
    if not moved:
        return ActionResult(False, "not retried: the renewal changed meanwhile")
    return ActionResult(True, "retry queued")


def reconcile_problem(cycle: BillingCycle, client: BigCommerceClient) -> str | None:
    """Return why the order may already be paid, or None when it certainly is not."""
    order_id = cycle.order_id
    assert order_id is not None
    try:
        order = client.get_order(order_id)
        transactions = client.get_transactions(order_id)
    except BigCommerceError as error:
        logger.warning("cycle %d: reconcile check failed: %s", cycle.id, error)
        return f"reconcile check failed ({error}); try again later"
    status = order.get("status_id")
    if status != INCOMPLETE_ORDER_STATUS:
        return f"order {order_id} has status_id {status}, so it may be paid"
    for transaction in transactions:
        if str(transaction.get("status", "")).lower() in PAYMENT_TRANSACTION_STATUSES:
            return (
                f"order {order_id} has a {transaction.get('status')} transaction "
                f"{transaction.get('id')}"
            )
    return None


def approve(session: Session, cycle: BillingCycle, now: datetime) -> ActionResult:
    """Release a renewal that waits for review without ever having been tried."""
    if cycle.state != CycleState.NEEDS_REVIEW or cycle.attempt_count > 0:
        return ActionResult(
            False,
            "not approved: only a renewal in review with no attempt can be approved; "
            "use retry now for one that was tried",
        )
    moved = cycles.move_cycle(
        session,
        cycle.id,
        now,
        expected=(CycleState.NEEDS_REVIEW,),
        state=CycleState.DUE,
        queued_at=None,
    )
    if not moved:
        return ActionResult(False, "not approved: the renewal changed meanwhile")
    return ActionResult(True, "approved; the scheduler queues it at its next tick")


def skip(session: Session, cycle: BillingCycle, now: datetime) -> ActionResult:
    """Close the renewal unbilled; the subscription's next renewal is unaffected."""
    moved = cycles.move_cycle(
        session,
        cycle.id,
        now,
        expected=SKIPPABLE_STATES,
        state=CycleState.SKIPPED,
        next_attempt_at=None,
        last_error_message="skipped by an operator",
    )
    if not moved:
        return ActionResult(False, f"not skipped: the renewal is {cycle.state}")
    return ActionResult(True, "skipped")


def cancel_subscription(
    session: Session, cycle: BillingCycle, now: datetime
) -> ActionResult:
    """Cancel the renewal's subscription and skip this renewal when it can be."""
    subscription: Subscription = cycle.subscription
    cancel_now(subscription, now)
    skipped = skip(session, cycle, now)
    detail = "renewal skipped" if skipped.changed else skipped.message
    return ActionResult(True, f"subscription {subscription.id} canceled; {detail}")


def resume_store(store: Store) -> ActionResult:
    if not store.billing_paused:
        return ActionResult(False, "not resumed: billing is not paused")
    store.billing_paused = False
    store.billing_paused_reason = None
    return ActionResult(True, "billing resumed")
