"""Outcomes followed to their end: reconciliation, dunning, instruments, probes.

Every test runs the scheduler tick and the worker in-process against the
sandbox at a test clock, and counts charges in the sandbox ledger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from models import BillingCycle, CycleState, OutcomeClass, SubscriptionStatus
from rebill.client import ResponseInfo
from tests.fixtures.billed_store import STORE_HASH, BilledStore

SHORT_READ_TIMEOUT = 0.3
# Maximum wait for a request the sandbox is still handling in another thread.
SANDBOX_WAIT_SECONDS = 10


def at_nine(moment: datetime) -> datetime:
    return moment.replace(hour=9, minute=0, second=0, microsecond=0)


def subscribe(billed_store: BilledStore, *instruments: dict[str, Any]) -> int:
    customer, _ = billed_store.add_customer(*instruments)
    return billed_store.add_subscription(customer)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SANDBOX_WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def force_state(billed_store: BilledStore, cycle_id: int, **values: Any) -> None:
    with billed_store.runtime.sessions() as session:
        session.execute(
            sa.update(BillingCycle).where(BillingCycle.id == cycle_id).values(**values)
        )
        session.commit()


def test_lost_response_reconciles_to_paid(billed_store: BilledStore) -> None:
    subscribe(billed_store)
    billed_store.inject("payments", "drop_after_charge")
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.UNKNOWN

    billed_store.advance(timedelta(minutes=5))
    result = billed_store.tick()
    assert result.checks.reconciled == 1
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.PAID
    assert cycle.next_attempt_at is None
    assert cycle.paid_at == billed_store.now
    assert len(billed_store.attempts(cycle.id)) == 1
    assert billed_store.charges(cycle.order_id) == 1


def test_unsent_server_error_retries_same_order(billed_store: BilledStore) -> None:
    subscribe(billed_store)
    billed_store.inject("payments", "server_error", status=503)
    billed_store.tick_and_work()
    first_order = billed_store.cycle().order_id

    billed_store.advance(timedelta(minutes=5))
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.PAID
    assert cycle.order_id == first_order
    assert len(billed_store.attempts(cycle.id)) == 2
    assert billed_store.charges() == 1


def test_slow_payment_is_never_charged_twice(billed_store: BilledStore) -> None:
    runtime = billed_store.runtime
    runtime.settings = replace(runtime.settings, http_read_timeout=SHORT_READ_TIMEOUT)
    subscribe(billed_store)
    # The first payment outlasts the read timeout and is handled after the
    # retry has paid the order, so the sandbox rejects it (order not status 0).
    billed_store.inject("payments", "slow", delay=1.5)
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.UNKNOWN

    billed_store.advance(timedelta(minutes=5))
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.PAID
    wait_until(lambda: billed_store.state.faults(STORE_HASH) == [], "the fault")
    time.sleep(2.0)  # the slow request finishes within its 1.5 s delay
    assert billed_store.charges() == 1
    assert len(billed_store.state.pats(STORE_HASH)) == 2


def test_duplicate_code_never_charges_again(billed_store: BilledStore) -> None:
    subscribe(billed_store, {"is_default": True, "behavior": 30105})
    billed_store.tick_and_work()
    billed_store.advance(timedelta(minutes=5))
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.NEEDS_REVIEW
    assert cycle.next_attempt_at is None
    assert cycle.review_reason is not None
    assert "30105" in cycle.review_reason
    assert len(billed_store.attempts(cycle.id)) == 1
    assert billed_store.charges() == 0


def test_paid_order_answering_wrong_status_is_paid(billed_store: BilledStore) -> None:
    subscribe(billed_store)
    billed_store.inject("payments", "drop_after_charge")
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    # As if the UNKNOWN state had been lost: the cycle is retried blind.
    force_state(
        billed_store,
        cycle.id,
        state=CycleState.RETRY_SCHEDULED,
        next_attempt_at=billed_store.now,
        queued_at=None,
    )
    billed_store.tick_and_work()
    attempts = billed_store.attempts(cycle.id)
    assert attempts[-1].error_code == 30101
    assert attempts[-1].payment_sent_at is None
    assert billed_store.cycle().state == CycleState.UNKNOWN

    billed_store.tick()
    assert billed_store.cycle().state == CycleState.PAID
    assert billed_store.charges() == 1


def test_total_mismatch_rebuilds_order_once(billed_store: BilledStore) -> None:
    subscribe(billed_store)
    billed_store.inject("payments", "error", code=30004)
    billed_store.tick_and_work()
    first = billed_store.cycle()
    assert first.state == CycleState.UNKNOWN

    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.PAID
    assert cycle.order_rebuilds == 1
    assert cycle.order_id != first.order_id
    orders = billed_store.state.orders(STORE_HASH)
    assert [order["external_order_id"] for order in orders] == [
        "rebill-cycle-1",
        "rebill-cycle-1-1",
    ]
    assert billed_store.charges(first.order_id) == 0
    assert billed_store.charges(cycle.order_id) == 1


def test_second_order_problem_goes_to_review(billed_store: BilledStore) -> None:
    subscribe(billed_store)
    billed_store.inject("payments", "error", code=30004, count=2)
    for _ in range(3):
        billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.NEEDS_REVIEW
    assert cycle.review_reason is not None
    assert "rebuilt 1 time" in cycle.review_reason
    assert billed_store.charges() == 0


def test_pending_payment_settles_paid(billed_store: BilledStore) -> None:
    subscribe(billed_store, {"is_default": True, "behavior": "pending"})
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.PENDING

    billed_store.advance(timedelta(hours=1))
    billed_store.tick()
    still_pending = billed_store.cycle(cycle.id)
    assert still_pending.state == CycleState.PENDING
    assert still_pending.next_attempt_at == cycle.next_attempt_at + timedelta(hours=23)

    billed_store.state.settle_pending(STORE_HASH, cycle.order_id, "success")
    billed_store.advance(timedelta(days=1))
    billed_store.tick()
    assert billed_store.cycle(cycle.id).state == CycleState.PAID
    assert billed_store.charges(cycle.order_id) == 1


def test_pending_payment_declined_enters_dunning(billed_store: BilledStore) -> None:
    subscription_id = subscribe(
        billed_store, {"is_default": True, "behavior": "pending"}
    )
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    billed_store.state.settle_pending(STORE_HASH, cycle.order_id, "declined")
    billed_store.advance(timedelta(hours=1))
    billed_store.tick()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.RETRY_SCHEDULED
    assert cycle.order_id is None
    assert cycle.order_rebuilds == 1
    assert cycle.next_attempt_at == at_nine(billed_store.now + timedelta(days=1))
    subscription = billed_store.subscription(subscription_id)
    assert subscription.status == SubscriptionStatus.PAST_DUE
    assert billed_store.charges() == 0


def test_hard_decline_tries_other_instrument(billed_store: BilledStore) -> None:
    subscribe(
        billed_store,
        {"is_default": True, "behavior": 30107, "kind": "stored_paypal_account"},
        {"brand": "VISA", "last_4": "1111"},
    )
    billed_store.tick_and_work()
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.PAID
    first, second = billed_store.attempts(cycle.id)
    assert first.outcome == OutcomeClass.HARD_DECLINE
    assert first.instrument_type == "stored_paypal_account"
    assert second.instrument_type == "stored_card"
    assert second.instrument_last4 == "1111"
    (entry,) = billed_store.state.ledger(STORE_HASH)
    assert entry["payment_method_id"] == "stripe.card"


def test_hard_decline_waits_for_new_instrument(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer({"is_default": True, "behavior": 30102})
    subscription_id = billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    first_decline = billed_store.now
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.AWAITING_INSTRUMENT
    assert cycle.next_attempt_at == at_nine(first_decline + timedelta(days=1))

    billed_store.now = cycle.next_attempt_at
    result = billed_store.tick()
    assert result.checks.instrument_checks == 1
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.AWAITING_INSTRUMENT
    assert cycle.next_attempt_at == at_nine(first_decline + timedelta(days=3))
    assert cycle.wait_checks == 1

    billed_store.state.add_instrument(STORE_HASH, customer, last_4="0077")
    billed_store.now = cycle.next_attempt_at
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.PAID
    attempts = billed_store.attempts(cycle.id)
    assert [attempt.outcome for attempt in attempts] == [
        OutcomeClass.HARD_DECLINE,
        OutcomeClass.NOT_CHARGED,
        OutcomeClass.PAID,
    ]
    assert attempts[-1].instrument_last4 == "0077"
    subscription = billed_store.subscription(subscription_id)
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert billed_store.charges() == 1


def store_api_calls(records: list[logging.LogRecord]) -> list[str]:
    """Return the store API endpoints the client logged, in order."""
    calls = []
    for record in records:
        if record.name != "rebill.client":
            continue
        message = record.getMessage()
        for endpoint in (
            "create order",
            "find orders",
            "get payment methods",
            "create payment access token",
        ):
            if f" {endpoint} ->" in message:
                calls.append(endpoint)
    return calls


def test_second_renewal_reuses_paid_instrument(
    billed_store: BilledStore, caplog: pytest.LogCaptureFixture
) -> None:
    subscription_id = subscribe(billed_store)
    billed_store.tick_and_work()
    subscription = billed_store.subscription(subscription_id)
    assert subscription.instrument_type == "stored_card"
    assert subscription.instrument_last4 == "4242"

    caplog.clear()
    caplog.set_level(logging.INFO, logger="rebill.client")
    billed_store.advance(timedelta(days=1))
    billed_store.tick_and_work()
    assert store_api_calls(caplog.records) == [
        "create order",
        "create payment access token",
    ]
    assert [cycle.state for cycle in billed_store.cycles()] == [CycleState.PAID] * 2
    assert billed_store.charges() == 2


def test_removed_instrument_falls_back_to_fetch(billed_store: BilledStore) -> None:
    customer, (card, _) = billed_store.add_customer(
        {"is_default": True}, {"kind": "stored_paypal_account"}
    )
    subscription_id = billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    billed_store.state.remove_instrument(STORE_HASH, card)

    billed_store.advance(timedelta(days=1))
    billed_store.tick_and_work()
    second = billed_store.cycles()[1]
    assert second.state == CycleState.RETRY_SCHEDULED
    assert second.last_error_code == 30051
    assert billed_store.subscription(subscription_id).instrument_type is None

    billed_store.tick_and_work()
    assert billed_store.cycles()[1].state == CycleState.PAID
    subscription = billed_store.subscription(subscription_id)
    assert subscription.instrument_type == "stored_paypal_account"
    assert billed_store.charges() == 2


def test_soft_declines_run_schedule_then_pause(billed_store: BilledStore) -> None:
    subscription_id = subscribe(billed_store, {"is_default": True, "behavior": 30106})
    billed_store.tick_and_work()
    first = billed_store.now
    expected = [at_nine(first + timedelta(days=days)) for days in (1, 3, 7, 14)]
    for retry_at in expected:
        cycle = billed_store.cycle()
        assert cycle.state == CycleState.RETRY_SCHEDULED
        assert cycle.next_attempt_at == retry_at
        billed_store.now = retry_at
        billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.FAILED
    assert cycle.next_attempt_at is None
    assert cycle.last_error_message is not None
    assert "end of dunning: pause" in cycle.last_error_message
    assert len(billed_store.attempts(cycle.id)) == 5
    assert cycle.decline_count == 5
    subscription = billed_store.subscription(subscription_id)
    assert subscription.status == SubscriptionStatus.PAUSED
    assert billed_store.charges() == 0


def test_store_policy_cancels_at_end(billed_store: BilledStore) -> None:
    billed_store.set_store(retry_policy={"max_declines": 1, "end_of_dunning": "cancel"})
    subscription_id = subscribe(billed_store, {"is_default": True, "behavior": 30106})
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.FAILED
    subscription = billed_store.subscription(subscription_id)
    assert subscription.status == SubscriptionStatus.CANCELED


def test_subscription_action_overrides_store(billed_store: BilledStore) -> None:
    billed_store.set_store(retry_policy={"max_declines": 1, "end_of_dunning": "cancel"})
    customer, _ = billed_store.add_customer({"is_default": True, "behavior": 30106})
    subscription_id = billed_store.add_subscription(
        customer, end_of_dunning_action="skip"
    )
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.FAILED
    subscription = billed_store.subscription(subscription_id)
    assert subscription.status == SubscriptionStatus.ACTIVE


def test_paid_retry_keeps_billing_anchor(billed_store: BilledStore) -> None:
    subscription_id = subscribe(billed_store)
    billed_store.inject("payments", "error", code=30106)
    billed_store.tick_and_work()
    anchor = billed_store.subscription(subscription_id).next_billing_at
    assert billed_store.subscription(subscription_id).status == (
        SubscriptionStatus.PAST_DUE
    )

    billed_store.now = billed_store.cycle().next_attempt_at
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.PAID
    subscription = billed_store.subscription(subscription_id)
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.next_billing_at == anchor


def test_no_second_cycle_during_dunning(billed_store: BilledStore) -> None:
    subscription_id = subscribe(billed_store)
    with billed_store.runtime.sessions() as session:
        session.execute(
            sa.text("UPDATE subscriptions SET cron = '0 * * * *' WHERE id = :id"),
            {"id": subscription_id},
        )
        session.commit()
    billed_store.inject("payments", "error", code=30106)
    billed_store.tick_and_work()
    retry_at = billed_store.cycle().next_attempt_at
    assert retry_at is not None

    billed_store.advance(timedelta(hours=3))
    result = billed_store.tick()
    assert result.opened == []
    assert len(billed_store.cycles()) == 1

    billed_store.now = retry_at
    billed_store.tick_and_work()
    assert billed_store.cycles()[0].state == CycleState.PAID
    result = billed_store.tick()
    assert len(result.opened) == 1
    assert len(billed_store.cycles()) == 2


def test_merchant_error_probe_resumes_store(billed_store: BilledStore) -> None:
    first_subscription = subscribe(billed_store)
    second_subscription = subscribe(billed_store)
    billed_store.inject("payments", "error", code=30000)
    billed_store.tick_and_work()
    first, second = billed_store.cycles()
    assert first.state == CycleState.RETRY_SCHEDULED
    assert second.state == CycleState.DUE
    assert billed_store.store().billing_paused is True
    assert billed_store.charges() == 0

    billed_store.advance(timedelta(minutes=10))
    billed_store.tick_and_work()
    assert billed_store.charges() == 0

    billed_store.advance(timedelta(minutes=5))
    result = billed_store.tick()
    assert result.checks.probes == 1
    assert billed_store.queue == [first.id]
    billed_store.work()
    assert billed_store.store().billing_paused is False
    billed_store.tick_and_work()
    assert [cycle.state for cycle in billed_store.cycles()] == [CycleState.PAID] * 2
    for subscription_id in (first_subscription, second_subscription):
        status = billed_store.subscription(subscription_id).status
        assert status == SubscriptionStatus.ACTIVE
    assert billed_store.charges() == 2


def test_failed_probe_keeps_store_paused(billed_store: BilledStore) -> None:
    subscribe(billed_store)
    billed_store.inject("payments", "error", code=30002, count=2)
    billed_store.tick_and_work()
    billed_store.advance(timedelta(minutes=15))
    billed_store.tick_and_work()
    store = billed_store.store()
    assert store.billing_paused is True
    assert store.probe_count == 1
    assert store.next_probe_at == billed_store.now + timedelta(hours=1)
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.RETRY_SCHEDULED
    assert [attempt.outcome for attempt in billed_store.attempts(cycle.id)] == [
        OutcomeClass.MERCHANT_CONFIG,
        OutcomeClass.MERCHANT_CONFIG,
    ]
    assert billed_store.charges() == 0


def test_pat_rejected_twice_pauses_store(billed_store: BilledStore) -> None:
    subscribe(billed_store)
    billed_store.inject("payments", "error", status=401, code=10001, count=2)
    billed_store.tick_and_work()
    assert billed_store.store().billing_paused is False
    billed_store.advance(timedelta(minutes=5))
    billed_store.tick_and_work()
    store = billed_store.store()
    assert store.billing_paused is True
    assert store.billing_paused_reason is not None
    assert "rejected twice" in store.billing_paused_reason


def test_slow_order_creation_finds_order_again(billed_store: BilledStore) -> None:
    runtime = billed_store.runtime
    runtime.settings = replace(runtime.settings, http_read_timeout=SHORT_READ_TIMEOUT)
    subscribe(billed_store)
    billed_store.inject("orders", "slow", delay=1.0)
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.RETRY_SCHEDULED
    wait_until(lambda: len(billed_store.state.orders(STORE_HASH)) == 1, "the order")

    billed_store.advance(timedelta(minutes=5))
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.PAID
    assert len(billed_store.state.orders(STORE_HASH)) == 1
    assert billed_store.charges() == 1


class ClockMovingGate:
    """A request gate that moves the sandbox clock just before a payment."""

    def __init__(self, inner: Any, billed_store: BilledStore, seconds: float) -> None:
        self.inner = inner
        self.billed_store = billed_store
        self.seconds = seconds

    def admit_renewal(self, count: int, ticket: str) -> None:
        self.inner.admit_renewal(count, ticket)

    def before(self, host: str) -> None:
        if host == "payments" and self.seconds:
            self.billed_store.state.advance_clock(self.seconds)
            self.seconds = 0
        self.inner.before(host)

    def after(self, info: ResponseInfo) -> None:
        self.inner.after(info)


def test_expired_pat_is_minted_again(
    billed_store: BilledStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = billed_store.runtime
    gate_for = runtime.gate_for
    expire_once = [3601.0]

    def moving_gate(store: Any) -> ClockMovingGate:
        seconds = expire_once.pop() if expire_once else 0.0
        return ClockMovingGate(gate_for(store), billed_store, seconds)

    monkeypatch.setattr(runtime, "gate_for", moving_gate)
    subscribe(billed_store)
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    (attempt,) = billed_store.attempts(cycle.id)
    assert attempt.http_status == 401
    assert attempt.outcome == OutcomeClass.TRANSIENT
    assert cycle.state == CycleState.RETRY_SCHEDULED
    assert cycle.next_attempt_at == billed_store.now + timedelta(minutes=5)

    billed_store.advance(timedelta(minutes=5))
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.PAID
    assert len(billed_store.state.pats(STORE_HASH)) == 2
    assert billed_store.charges() == 1


def test_unreadable_order_keeps_unknown(billed_store: BilledStore) -> None:
    subscribe(billed_store)
    billed_store.inject("payments", "drop_after_charge")
    billed_store.tick_and_work()
    started = billed_store.now
    billed_store.inject("orders", "server_error")
    billed_store.advance(timedelta(minutes=5))
    billed_store.tick()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.UNKNOWN
    assert cycle.wait_checks == 1
    assert cycle.next_attempt_at == started + timedelta(hours=1)

    billed_store.now = cycle.next_attempt_at
    billed_store.tick()
    assert billed_store.cycle().state == CycleState.PAID
    assert billed_store.charges() == 1
