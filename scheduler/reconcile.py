"""Checks the scheduler runs every tick: reconcile, look for instruments, probe.

- An UNKNOWN or PENDING cycle whose next_attempt_at has come is reconciled:
  the order's status_id and its V3 transactions show whether a payment exists,
  and rebill.decisions.decide_reconcile decides what follows. A cycle is charged
  again only when its order is still Incomplete and has no payment.
- An AWAITING_INSTRUMENT cycle whose next_attempt_at has come reads the
  instruments offered for its order and is retried once a usable one that was
  not declined in this cycle appears.
- A store whose billing a merchant configuration error paused gets, at its
  next_probe_at, one of its cycles released for one attempt: the probe.

Cycles of paused stores are not checked, and a store whose rate limit asks
for a wait is skipped for the rest of the tick. Each decision is applied with a
compare-and-set on the cycle's state and number of checks, so two schedulers
checking the same cycle apply one decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import (
    CLAIMABLE_STATES,
    BillingCycle,
    CycleState,
    OutcomeClass,
    Store,
)
from rebill import cycles
from rebill.client import BigCommerceClient
from rebill.decisions import (
    Decision,
    Finding,
    decide_instrument_check,
    decide_reconcile,
    next_probe_at,
)
from rebill.errors import ApiError, BigCommerceError, RateLimitWait
from rebill.history import load_facts
from rebill.policy import classify_error, policy_for
from rebill.runtime import Runtime
from worker.instruments import usable_instruments

logger = logging.getLogger(__name__)

RECONCILED_STATES = (CycleState.UNKNOWN, CycleState.PENDING)
# Order statuses that count as paid (Shipped, Partially Shipped, Awaiting
# Pickup, Awaiting Shipment, Completed, Awaiting Fulfillment).
PAID_ORDER_STATUSES = frozenset({2, 3, 8, 9, 10, 11})
AWAITING_PAYMENT = 7
INCOMPLETE = 0
PAYMENT_EVENTS = frozenset({"purchase", "capture", "authorization"})


@dataclass
class CheckResult:
    reconciled: int = 0
    instrument_checks: int = 0
    probes: int = 0

    def __str__(self) -> str:
        return (
            f"{self.reconciled} cycle(s) reconciled, {self.instrument_checks} "
            f"instrument check(s), {self.probes} store probe(s)"
        )


@dataclass(frozen=True)
class OrderReading:
    """Finding about a cycle's payment from its order and transactions."""

    finding: Finding
    detail: str
    transaction_id: str | None = None


def run_checks(runtime: Runtime, now: datetime) -> CheckResult:
    """Run every check that is due at `now`.

    NOTE: the checks run one after another inside the tick, so a store API that
    answers slowly lengthens the tick by up to two read timeouts per cycle, for
    at most REBILL_RECONCILE_BATCH_SIZE cycles of each kind.
    """
    limit = runtime.settings.reconcile_batch_size
    return CheckResult(
        reconciled=check_due(runtime, now, RECONCILED_STATES, reconcile_cycle, limit),
        instrument_checks=check_due(
            runtime,
            now,
            (CycleState.AWAITING_INSTRUMENT,),
            check_instruments,
            limit,
        ),
        probes=probe_paused_stores(runtime, now),
    )


CycleCheck = Callable[[Runtime, int, datetime], bool]


def check_due(
    runtime: Runtime,
    now: datetime,
    states: Sequence[str],
    check: CycleCheck,
    limit: int,
) -> int:
    """Run `check` on up to `limit` due cycles; return how many were checked."""
    due = due_cycles(runtime, now, states, limit)
    waiting_stores: set[int] = set()
    checked = 0
    for cycle_id, store_id in due:
        if store_id in waiting_stores:
            continue
        try:
            checked += check(runtime, cycle_id, now)
        except RateLimitWait as wait:
            waiting_stores.add(store_id)
            logger.info("cycle %d: check postponed: %s", cycle_id, wait)
        except Exception:
            # One broken cycle must not hold up the tick's other checks and
            # its queueing; it is checked again at the next tick.
            logger.exception("cycle %d: check failed; trying again next tick", cycle_id)
    return checked


def due_cycles(
    runtime: Runtime, now: datetime, states: Sequence[str], limit: int
) -> list[tuple[int, int]]:
    """Return (cycle id, store id) of due cycles of stores that bill, oldest first."""
    with runtime.sessions() as session:
        rows = session.execute(
            sa.select(BillingCycle.id, BillingCycle.store_id)
            .join(Store, Store.id == BillingCycle.store_id)
            .where(
                BillingCycle.state.in_(states),
                sa.or_(
                    BillingCycle.next_attempt_at.is_(None),
                    BillingCycle.next_attempt_at <= now,
                ),
                Store.billing_paused.is_(False),
            )
            .order_by(BillingCycle.next_attempt_at, BillingCycle.id)
            .limit(limit)
        ).all()
    return [(cycle_id, store_id) for cycle_id, store_id in rows]


def read_order(order: dict[str, Any] | None, transactions: list[dict]) -> OrderReading:
    """Tell from an order (None when not found) and its transactions if it is paid."""
    if order is None:
        return OrderReading(Finding.UNPAYABLE, "the order was not found")
    status = order.get("status_id")
    for transaction in transactions:
        if (
            transaction.get("status") == "ok"
            and transaction.get("event") in PAYMENT_EVENTS
        ):
            return OrderReading(
                Finding.PAID,
                f"transaction {transaction.get('id')} ({transaction.get('event')}) "
                f"shows a payment; order status_id {status}",
                transaction_id=str(transaction.get("id")),
            )
    if status == AWAITING_PAYMENT or has_open_pending(transactions):
        return OrderReading(
            Finding.PENDING, f"the payment is pending; order status_id {status}"
        )
    if status == INCOMPLETE:
        return OrderReading(
            Finding.NOT_PAID, "no payment found and the order is still Incomplete"
        )
    if status in PAID_ORDER_STATUSES:
        return OrderReading(
            Finding.MARKED_PAID,
            f"order status_id is {status} (paid) but no transaction shows a payment",
        )
    return OrderReading(
        Finding.UNPAYABLE, f"no payment found and the order status_id is {status}"
    )


def has_open_pending(transactions: list[dict]) -> bool:
    """Return True when a pending transaction has no later purchase or capture."""
    pending = False
    for transaction in transactions:
        if transaction.get("event") == "pending":
            pending = True
        elif transaction.get("event") in ("purchase", "capture", "void"):
            pending = False
    return pending


def inspect_order(client: BigCommerceClient, order_id: int) -> OrderReading:
    """Read the order and its transactions through the store API."""
    try:
        order = client.get_order(order_id)
    except ApiError as error:
        if error.http_status != 404:
            raise
        return read_order(None, [])
    return read_order(order, client.get_transactions(order_id))


def reconcile_cycle(runtime: Runtime, cycle_id: int, now: datetime) -> bool:
    """Reconcile one UNKNOWN or PENDING cycle; False if there was nothing to do."""
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        if cycle is None or cycle.state not in RECONCILED_STATES:
            return False
        store = cycle.subscription.store
        facts = load_facts(session, cycle)
        seen = (CycleState(cycle.state), cycle.wait_checks, cycle.order_id)
    state, checks, order_id = seen
    ids = f"store {store.store_hash} cycle {cycle_id} order {order_id or '-'}"
    if order_id is None:
        reading = OrderReading(Finding.NOT_PAID, "the cycle has no order yet")
    else:
        client = runtime.client_for(store)
        try:
            reading = inspect_order(client, order_id)
        except BigCommerceError as error:
            if pause_on_merchant_error(runtime, store, error, now):
                return False
            reading = OrderReading(Finding.UNRESOLVED, f"order not read: {error}")
    policy = policy_for(store.retry_policy)
    decision = decide_reconcile(
        reading.finding, state, facts, policy, now, detail=reading.detail
    )
    applied = apply_check(
        runtime, cycle_id, decision, now, expected=state, checks=checks, reading=reading
    )
    if applied:
        logger.info("%s: reconciled: %s -> %s", ids, reading.detail, decision.state)
    return applied


def check_instruments(runtime: Runtime, cycle_id: int, now: datetime) -> bool:
    """Look for a usable instrument for an AWAITING_INSTRUMENT cycle."""
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        if cycle is None or cycle.state != CycleState.AWAITING_INSTRUMENT:
            return False
        store = cycle.subscription.store
        facts = load_facts(session, cycle)
        checks, order_id = cycle.wait_checks, cycle.order_id
    declined = {
        item.instrument_fingerprint
        for item in facts.history
        if item.outcome is OutcomeClass.HARD_DECLINE and item.instrument_fingerprint
    }
    found = True  # without an order, the worker reads the instruments itself
    if order_id is not None:
        try:
            offered = runtime.client_for(store).get_payment_methods(order_id)
            found = bool(usable_instruments(offered, now.date(), declined))
        except BigCommerceError as error:
            if pause_on_merchant_error(runtime, store, error, now):
                return False
            logger.warning("cycle %d: instruments not read: %s", cycle_id, error)
            found = False
    decision = decide_instrument_check(
        found, facts, policy_for(store.retry_policy), now
    )
    applied = apply_check(
        runtime,
        cycle_id,
        decision,
        now,
        expected=CycleState.AWAITING_INSTRUMENT,
        checks=checks,
    )
    if applied:
        logger.info(
            "store %s cycle %d: instrument check: %s -> %s",
            store.store_hash,
            cycle_id,
            decision.reason,
            decision.state,
        )
    return applied


def apply_check(
    runtime: Runtime,
    cycle_id: int,
    decision: Decision,
    now: datetime,
    *,
    expected: CycleState,
    checks: int,
    reading: OrderReading | None = None,
) -> bool:
    """Apply a check's decision to the cycle and its subscription."""
    values: dict[str, Any] = {}
    if decision.state is CycleState.PAID:
        values = {"paid_at": now, "last_outcome": OutcomeClass.PAID}
        if reading is not None and reading.transaction_id is not None:
            values["transaction_id"] = reading.transaction_id
    with runtime.sessions() as session:
        applied = cycles.apply_decision(
            session,
            cycle_id,
            decision,
            now,
            expected=(expected,),
            wait_checks=checks,
            **values,
        )
        if not applied:
            session.rollback()
            return False
        if decision.subscription_status is not None:
            subscription_id = session.scalar(
                sa.select(BillingCycle.subscription_id).where(
                    BillingCycle.id == cycle_id
                )
            )
            assert subscription_id is not None
            cycles.set_subscription_status(
                session, subscription_id, decision.subscription_status, now
            )
        session.commit()
    return True


def pause_on_merchant_error(
    runtime: Runtime, store: Store, error: BigCommerceError, now: datetime
) -> bool:
    """Pause the store when a read failed for a merchant configuration error."""
    if classify_error(error, payment_sent=False) is not OutcomeClass.MERCHANT_CONFIG:
        return False
    policy = policy_for(store.retry_policy)
    with runtime.sessions() as session:
        paused = cycles.pause_store(
            session,
            store.id,
            f"store API refused a read: {error}",
            now,
            next_probe_at=next_probe_at(0, policy, now),
        )
        session.commit()
    if paused:
        logger.error("store %s: billing paused: %s", store.store_hash, error)
    return True


def probe_paused_stores(runtime: Runtime, now: datetime) -> int:
    """Release one cycle of each store whose probe is due; return how many."""
    with runtime.sessions() as session:
        stores = session.scalars(
            sa.select(Store)
            .where(Store.billing_paused.is_(True), Store.next_probe_at <= now)
            .with_for_update(skip_locked=True)
        ).all()
        for store in stores:
            release_probe(session, store, now)
        session.commit()
    return len(stores)


def release_probe(session: Session, store: Store, now: datetime) -> None:
    """Let one held cycle of a paused store be charged once, as a probe.

    A store with no cycle to probe with is resumed: its next renewal is the
    probe then, and pauses the store again if the error persists.
    """
    cycle = session.scalars(
        sa.select(BillingCycle)
        .where(
            BillingCycle.store_id == store.id,
            BillingCycle.state.in_(CLAIMABLE_STATES),
            sa.or_(
                BillingCycle.next_attempt_at.is_(None),
                BillingCycle.next_attempt_at <= now,
            ),
        )
        .order_by(BillingCycle.id)
        .limit(1)
    ).first()
    if cycle is None:
        cycles.resume_store(session, store.id, now)
        logger.warning(
            "store %s: billing resumed: no held cycle to probe with", store.store_hash
        )
        return
    policy = policy_for(store.retry_policy)
    store.probe_count += 1
    store.probe_cycle_id = cycle.id
    store.next_probe_at = next_probe_at(store.probe_count, policy, now)
    cycle.next_attempt_at = now
    cycle.queued_at = None
    cycle.updated_at = now
    logger.info(
        "store %s: probe %d releases cycle %d; next probe at %s",
        store.store_hash,
        store.probe_count,
        cycle.id,
        store.next_probe_at.isoformat(),
    )
