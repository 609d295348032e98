"""The renewal path against the sandbox, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from models import (
    BillingCycle,
    CycleState,
    OutcomeClass,
    Store,
    Subscription,
    SubscriptionStatus,
)
from rebill.order_template import OrderTemplate
from rebill.runtime import Runtime
from sandbox.server import SandboxServer
from scheduler.tick import tick
from tests.factories import make_store, make_subscription
from tests.fixtures.sandbox import SeededStore, seed_store
from worker.renewal import claim, external_order_id, renew

NOW = datetime.now(UTC).replace(microsecond=0)
API_TOKEN = "sandbox-api-token-5f2c"


@dataclass
class Billing:
    runtime: Runtime
    sandbox: SandboxServer
    seeded: SeededStore
    store_id: int

    @property
    def store_hash(self) -> str:
        return self.seeded.store_hash

    def subscribe(self, customer_id: int = 42, **values: object) -> int:
        with self.runtime.sessions() as session:
            store = session.get_one(Store, self.store_id)
            subscription = make_subscription(
                session, store, next_billing_at=NOW, customer_id=customer_id, **values
            )
            session.commit()
            return subscription.id

    def open_cycles(self) -> list[int]:
        return tick(self.runtime, NOW, lambda cycle_id: None).opened

    def cycle(self, cycle_id: int) -> BillingCycle:
        with self.runtime.sessions() as session:
            cycle = session.get_one(BillingCycle, cycle_id)
            cycle.attempts  # noqa: B018 - load the attempts before the session closes
            return cycle

    def charges(self, order_id: int | None) -> int:
        assert order_id is not None
        return self.sandbox.state.charges_for_order(self.store_hash, order_id)


@pytest.fixture
def billing(runtime: Runtime, sandbox: SandboxServer) -> Billing:
    seeded = seed_store(sandbox.state, access_token=API_TOKEN)
    with runtime.sessions() as session:
        store = make_store(
            session,
            seeded.store_hash,
            access_token=API_TOKEN,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
        )
        session.commit()
        store_id = store.id
    return Billing(runtime, sandbox, seeded, store_id)


def test_due_renewal_is_charged_once(billing: Billing) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()

    assert renew(cycle_id, billing.runtime) == CycleState.PAID

    cycle = billing.cycle(cycle_id)
    assert cycle.state == CycleState.PAID
    assert cycle.paid_at is not None
    assert cycle.transaction_id
    assert billing.charges(cycle.order_id) == 1
    (attempt,) = cycle.attempts
    assert attempt.outcome == OutcomeClass.PAID
    assert attempt.payment_method_id == "stripe.card"
    assert attempt.instrument_type == "stored_card"
    assert attempt.instrument_last4 == "4242"
    assert attempt.payment_sent_at is not None
    assert attempt.finished_at is not None


def test_renewal_order_is_incomplete_and_tagged(billing: Billing) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()
    renew(cycle_id, billing.runtime)

    (order,) = billing.sandbox.state.orders(billing.store_hash)
    assert order["customer_id"] == 42
    assert order["external_order_id"] == external_order_id(cycle_id)
    assert Decimal(order["total_inc_tax"]) == Decimal("20")
    assert order["status_id"] == 11  # Awaiting Fulfillment after the payment


def test_pat_is_minted_as_recurring(billing: Billing) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()
    renew(cycle_id, billing.runtime)

    pats = billing.sandbox.state.pats(billing.store_hash)
    assert len(pats) == 1
    assert pats[0]["is_recurring"] is True


def test_duplicate_delivery_charges_once(billing: Billing) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()

    first = renew(cycle_id, billing.runtime)
    second = renew(cycle_id, billing.runtime)

    assert first == CycleState.PAID
    assert second is None
    cycle = billing.cycle(cycle_id)
    assert billing.charges(cycle.order_id) == 1
    assert len(cycle.attempts) == 1


def test_concurrent_deliveries_charge_once(billing: Billing) -> None:
    for customer_id in (42, 43):
        billing.subscribe(customer_id)
    cycle_ids = billing.open_cycles()
    results: list[object] = []

    def deliver(cycle_id: int) -> None:
        results.append(renew(cycle_id, billing.runtime))

    threads = [
        threading.Thread(target=deliver, args=(cycle_id,))
        for cycle_id in cycle_ids
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(CycleState.PAID) == 2
    assert results.count(None) == 6
    for cycle_id in cycle_ids:
        assert billing.charges(billing.cycle(cycle_id).order_id) == 1
    assert len(billing.sandbox.state.ledger(billing.store_hash)) == 2


def test_worker_crash_before_sending_is_retried_once(billing: Billing) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()
    # A worker claims the cycle, then dies before any request leaves.
    assert claim(cycle_id, billing.runtime, NOW) is not None

    lease = timedelta(seconds=billing.runtime.settings.charge_lease + 1)
    queued: list[int] = []
    tick(billing.runtime, NOW + lease, queued.append)
    assert queued == [cycle_id]
    assert renew(cycle_id, billing.runtime) == CycleState.PAID

    cycle = billing.cycle(cycle_id)
    assert [attempt.outcome for attempt in cycle.attempts] == [
        OutcomeClass.NOT_CHARGED,
        OutcomeClass.PAID,
    ]
    assert billing.charges(cycle.order_id) == 1


def test_answer_lost_after_charge_is_never_resent(billing: Billing) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()
    billing.sandbox.state.inject_fault(
        billing.store_hash, "payments", "drop_after_charge"
    )

    assert renew(cycle_id, billing.runtime) == CycleState.UNKNOWN

    cycle = billing.cycle(cycle_id)
    assert cycle.attempts[0].outcome == OutcomeClass.UNKNOWN
    assert billing.charges(cycle.order_id) == 1
    queued: list[int] = []
    tick(billing.runtime, NOW + timedelta(hours=1), queued.append)
    assert queued == []
    assert renew(cycle_id, billing.runtime) is None
    assert billing.charges(cycle.order_id) == 1


def test_read_timeout_after_charge_is_unknown(billing: Billing) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()
    # The timeout leaves room for the store API calls before the payment on a
    # loaded machine; only the stalled payment response outlasts it.
    billing.runtime.settings = replace(billing.runtime.settings, http_read_timeout=1.5)
    billing.sandbox.state.inject_fault(
        billing.store_hash, "payments", "stall_after_charge", delay=3.0
    )

    assert renew(cycle_id, billing.runtime) == CycleState.UNKNOWN
    assert billing.charges(billing.cycle(cycle_id).order_id) == 1


@pytest.mark.parametrize(
    "status", [SubscriptionStatus.PAUSED, SubscriptionStatus.CANCELED]
)
def test_subscription_stopped_while_queued_is_not_charged(
    billing: Billing, status: str
) -> None:
    subscription_id = billing.subscribe()
    (cycle_id,) = billing.open_cycles()
    with billing.runtime.sessions() as session:
        session.get_one(Subscription, subscription_id).status = status
        session.commit()

    assert renew(cycle_id, billing.runtime) is None

    cycle = billing.cycle(cycle_id)
    assert cycle.state == CycleState.SKIPPED
    assert cycle.order_id is None
    assert billing.sandbox.state.ledger(billing.store_hash) == []


def test_customer_without_instruments_waits_with_reason(billing: Billing) -> None:
    billing.sandbox.state.add_customer(billing.store_hash, 77)
    billing.subscribe(77)
    (cycle_id,) = billing.open_cycles()

    assert renew(cycle_id, billing.runtime) == CycleState.AWAITING_INSTRUMENT

    cycle = billing.cycle(cycle_id)
    assert cycle.last_error_message is not None
    assert "no stored instrument" in cycle.last_error_message
    assert cycle.attempts[0].payment_sent_at is None
    assert billing.sandbox.state.pats(billing.store_hash) == []
    assert billing.sandbox.state.ledger(billing.store_hash) == []


def test_expired_card_is_not_charged(billing: Billing) -> None:
    billing.sandbox.state.add_customer(billing.store_hash, 78)
    billing.sandbox.state.add_instrument(
        billing.store_hash, 78, expiry_month=9, expiry_year=2020, is_default=True
    )
    billing.subscribe(78)
    (cycle_id,) = billing.open_cycles()

    assert renew(cycle_id, billing.runtime) == CycleState.AWAITING_INSTRUMENT
    assert "expired" in (billing.cycle(cycle_id).last_error_message or "")
    assert billing.sandbox.state.ledger(billing.store_hash) == []


def test_preferred_paypal_account_is_charged(billing: Billing) -> None:
    paypal = billing.seeded.customers[42].paypal_token
    billing.subscribe(payment_method_id="braintree.paypal", instrument_token=paypal)
    (cycle_id,) = billing.open_cycles()

    assert renew(cycle_id, billing.runtime) == CycleState.PAID

    (entry,) = billing.sandbox.state.ledger(billing.store_hash)
    assert entry["payment_method_id"] == "braintree.paypal"
    assert billing.cycle(cycle_id).attempts[0].instrument_type == (
        "stored_paypal_account"
    )


def test_order_total_mismatch_goes_to_review(billing: Billing) -> None:
    subscription_id = billing.subscribe()
    with billing.runtime.sessions() as session:
        # The stored amount no longer matches what the template orders.
        session.get_one(Subscription, subscription_id).amount_minor = 2500
        session.commit()
    (cycle_id,) = billing.open_cycles()

    assert renew(cycle_id, billing.runtime) == CycleState.NEEDS_REVIEW

    cycle = billing.cycle(cycle_id)
    assert "expected 2500 minor units" in (cycle.last_error_message or "")
    assert billing.sandbox.state.pats(billing.store_hash) == []
    assert billing.sandbox.state.ledger(billing.store_hash) == []


def test_order_created_before_a_crash_is_reused(billing: Billing) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()
    # An earlier try created the order, then died before storing its id.
    assert claim(cycle_id, billing.runtime, NOW) is not None
    lease = timedelta(seconds=billing.runtime.settings.charge_lease + 1)
    tick(billing.runtime, NOW + lease, lambda cycle_id: None)
    with billing.runtime.sessions() as session:
        subscription = session.scalars(sa.select(Subscription)).one()
        body = OrderTemplate.from_json(subscription.order_template).to_order_body(
            customer_id=42,
            currency="USD",
            external_order_id=external_order_id(cycle_id),
        )
        store = session.get_one(Store, billing.store_id)
        first = billing.runtime.client_for(store).create_order(body)

    assert renew(cycle_id, billing.runtime) == CycleState.PAID

    assert len(billing.sandbox.state.orders(billing.store_hash)) == 1
    assert billing.cycle(cycle_id).order_id == first["id"]


def test_renewal_logs_no_secrets(
    billing: Billing, caplog: pytest.LogCaptureFixture
) -> None:
    billing.subscribe()
    (cycle_id,) = billing.open_cycles()
    with caplog.at_level(logging.DEBUG):
        renew(cycle_id, billing.runtime)

    text = caplog.text
    assert "charging" in text  # the renewal was logged at all
    assert API_TOKEN not in text
    assert billing.seeded.customers[42].card_token not in text
    (pat,) = billing.sandbox.state.pats(billing.store_hash)
    assert "token" not in pat  # the sandbox keeps no PAT text to compare with
    assert "eyJ" not in text  # the start of every JWT, so of every PAT
