"""Problems met with the BigCommerce Payments API in the field, as renewals.

Each test reproduces one such problem against the sandbox and checks what
rebill does: no second charge, a bounded retry, or a wait for the customer.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from models import CycleState, OutcomeClass
from rebill.client import ResponseInfo
from rebill.errors import RateLimitWait
from tests.fixtures.billed_store import STORE_HASH, BilledStore

SHORT_READ_TIMEOUT = 0.3


class HookGate:
    """A request gate that runs `hook` once, just before the payment request."""

    def __init__(self, inner: Any, hook: Any) -> None:
        self.inner = inner
        self.hook = hook

    def __getattr__(self, name: str) -> Any:
        # Every other gate method (reserve_api, admit_renewal, ...) goes to the
        # real gate unchanged.
        return getattr(self.inner, name)

    def before(self, host: str) -> None:
        if host == "payments" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        self.inner.before(host)

    def after(self, info: ResponseInfo) -> None:
        self.inner.after(info)


def before_first_payment(
    billed_store: BilledStore, monkeypatch: pytest.MonkeyPatch, hook: Any
) -> None:
    """Run `hook` right before the first renewal's payment request."""
    runtime = billed_store.runtime
    gate_for = runtime.gate_for
    hooks = [hook]

    def gate(store: Any) -> HookGate:
        return HookGate(gate_for(store), hooks.pop() if hooks else None)

    monkeypatch.setattr(runtime, "gate_for", gate)


def test_renewal_pat_is_marked_recurring(billed_store: BilledStore) -> None:
    """Issuers exempt only charges flagged recurring from 3-D Secure."""
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    (pat,) = billed_store.state.pats(STORE_HASH)
    assert pat["is_recurring"] is True
    assert billed_store.cycle().state == CycleState.PAID


def test_timeout_after_charge_is_not_posted_again(billed_store: BilledStore) -> None:
    """Without an idempotency key, a blind retry after a timeout pays twice."""
    runtime = billed_store.runtime
    runtime.settings = replace(runtime.settings, http_read_timeout=SHORT_READ_TIMEOUT)
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.inject("payments", "stall_after_charge", delay=1.0)
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.UNKNOWN
    for _ in range(3):
        billed_store.advance(timedelta(minutes=5))
        billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.PAID
    assert len(billed_store.state.pats(STORE_HASH)) == 1
    assert billed_store.charges() == 1


def test_manual_paid_status_is_not_a_payment(billed_store: BilledStore) -> None:
    """Setting a paid status by hand moves no money; it must not count as paid."""
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.inject("payments", "server_error", status=502)
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.UNKNOWN
    assert cycle.order_id is not None
    billed_store.state.update_order(STORE_HASH, cycle.order_id, {"status_id": 11})

    billed_store.advance(timedelta(minutes=5))
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.NEEDS_REVIEW
    assert cycle.review_reason is not None
    assert "no transaction shows a payment" in cycle.review_reason
    assert billed_store.charges() == 0


def test_order_changed_after_pat_gets_new_order(
    billed_store: BilledStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order edited after its PAT was minted fails with 30004, never loops."""
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)

    def double_quantity() -> None:
        (order,) = billed_store.state.orders(STORE_HASH)
        line = billed_store.state.get_order(STORE_HASH, order["id"]).lines[0]
        billed_store.state.update_order(
            STORE_HASH, order["id"], {"products": [{"id": line.id, "quantity": 2}]}
        )

    before_first_payment(billed_store, monkeypatch, double_quantity)
    billed_store.tick_and_work()
    (attempt,) = billed_store.attempts(billed_store.cycle().id)
    assert attempt.error_code == 30004

    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.PAID
    assert cycle.order_rebuilds == 1
    (entry,) = billed_store.state.ledger(STORE_HASH)
    assert entry["order_id"] == cycle.order_id
    assert entry["amount"] == cycle.amount_minor


def test_expired_remembered_card_is_not_charged(billed_store: BilledStore) -> None:
    """Expired cards stay listed in Get Payment Methods; charging them fails."""
    customer, (card,) = billed_store.add_customer(
        {"is_default": True, "expiry_month": 1, "expiry_year": 2021}
    )
    billed_store.add_subscription(
        customer,
        payment_method_id="stripe.card",
        instrument_token=card,
        instrument_type="stored_card",
        instrument_last4="4242",
        instrument_expiry_month=1,
        instrument_expiry_year=2021,
    )
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.AWAITING_INSTRUMENT
    (attempt,) = billed_store.attempts(cycle.id)
    assert attempt.outcome == OutcomeClass.NOT_CHARGED
    assert attempt.payment_sent_at is None
    assert billed_store.state.pats(STORE_HASH) == []
    assert billed_store.charges() == 0


def test_rate_limit_without_headers_backs_off(billed_store: BilledStore) -> None:
    """A 429 may come without any rate-limit header and with an empty body."""
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.inject("payments", "rate_limit_bare")
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.RETRY_SCHEDULED
    assert cycle.next_attempt_at == billed_store.now + timedelta(minutes=5)
    (attempt,) = billed_store.attempts(cycle.id)
    assert attempt.http_status == 429

    # The limiter saw the 429 too and delays payments by a short real-time
    # backoff, which the test waits out like the Celery task's countdown does.
    billed_store.advance(timedelta(minutes=5))
    billed_store.tick()
    try:
        billed_store.work()
    except RateLimitWait as wait:
        time.sleep(wait.seconds)
        billed_store.advance(timedelta(seconds=wait.seconds))
        billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.PAID
    assert billed_store.charges() == 1
