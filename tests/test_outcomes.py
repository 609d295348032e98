"""One renewal attempt per error code and per sandbox fault.

Each case checks the cycle's state, its next_attempt_at and the charges in the
sandbox ledger right after the first attempt. tests/test_outcome_flows.py
follows the longer paths (reconciliation, dunning, probes) to their end.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from models import CycleState, OutcomeClass, SubscriptionStatus
from tests.fixtures.billed_store import BilledStore

FIVE_MINUTES = timedelta(minutes=5)
AT_ONCE = timedelta(0)
# Read timeout for the cases whose fault outlasts it.
SHORT_READ_TIMEOUT = 0.3


def tomorrow_at_nine(now: datetime) -> datetime:
    """The store's next soft-decline retry: tomorrow at its billing hour, 9:00 UTC."""
    return (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)


def first_attempt(billed_store: BilledStore, **instrument: Any) -> int:
    """Renew one subscription of a customer with one default card; return the cycle."""
    customer, _ = billed_store.add_customer({"is_default": True, **instrument})
    billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    return billed_store.cycle().id


def expected_next(billed_store: BilledStore, delay: timedelta | str | None):
    if delay is None:
        return None
    if delay == "billing hour":
        return tomorrow_at_nine(billed_store.now)
    assert isinstance(delay, timedelta)
    return billed_store.now + delay


CODE_CASES = [
    (10000, OutcomeClass.UNKNOWN, CycleState.UNKNOWN, FIVE_MINUTES),
    (10001, OutcomeClass.OUR_DATA, CycleState.NEEDS_REVIEW, None),
    (30000, OutcomeClass.MERCHANT_CONFIG, CycleState.RETRY_SCHEDULED, AT_ONCE),
    (30001, OutcomeClass.MERCHANT_CONFIG, CycleState.RETRY_SCHEDULED, AT_ONCE),
    (30002, OutcomeClass.MERCHANT_CONFIG, CycleState.RETRY_SCHEDULED, AT_ONCE),
    (30003, OutcomeClass.ORDER_PROBLEM, CycleState.UNKNOWN, AT_ONCE),
    (30004, OutcomeClass.ORDER_PROBLEM, CycleState.UNKNOWN, AT_ONCE),
    (30050, OutcomeClass.OUR_DATA, CycleState.NEEDS_REVIEW, None),
    (30051, OutcomeClass.HARD_DECLINE, CycleState.RETRY_SCHEDULED, AT_ONCE),
    (30100, OutcomeClass.TRANSIENT, CycleState.RETRY_SCHEDULED, FIVE_MINUTES),
    (30101, OutcomeClass.ORDER_PROBLEM, CycleState.UNKNOWN, AT_ONCE),
    (30102, OutcomeClass.HARD_DECLINE, CycleState.RETRY_SCHEDULED, AT_ONCE),
    (30103, OutcomeClass.HARD_DECLINE, CycleState.RETRY_SCHEDULED, AT_ONCE),
    (30104, OutcomeClass.SOFT_DECLINE, CycleState.RETRY_SCHEDULED, "billing hour"),
    (30105, OutcomeClass.UNKNOWN, CycleState.UNKNOWN, FIVE_MINUTES),
    (30106, OutcomeClass.SOFT_DECLINE, CycleState.RETRY_SCHEDULED, "billing hour"),
    (30107, OutcomeClass.HARD_DECLINE, CycleState.RETRY_SCHEDULED, AT_ONCE),
]


@pytest.mark.parametrize(
    ("code", "outcome", "state", "delay"),
    CODE_CASES,
    ids=[str(case[0]) for case in CODE_CASES],
)
def test_payment_error_code(
    billed_store: BilledStore,
    code: int,
    outcome: OutcomeClass,
    state: CycleState,
    delay: timedelta | str | None,
) -> None:
    cycle_id = first_attempt(billed_store, behavior=code)
    cycle = billed_store.cycle(cycle_id)
    (attempt,) = billed_store.attempts(cycle_id)
    assert attempt.error_code == code
    assert attempt.outcome == outcome
    assert attempt.payment_sent_at is not None
    assert cycle.state == state
    assert cycle.next_attempt_at == expected_next(billed_store, delay)
    assert cycle.last_error_code == code
    assert billed_store.charges() == 0
    store = billed_store.store()
    assert store.billing_paused is (outcome is OutcomeClass.MERCHANT_CONFIG)


@pytest.mark.parametrize("code", [30000, 30001, 30002])
def test_merchant_error_pauses_store(billed_store: BilledStore, code: int) -> None:
    cycle_id = first_attempt(billed_store, behavior=code)
    store = billed_store.store()
    assert store.billing_paused is True
    assert store.billing_paused_reason is not None
    assert f"code {code}" in store.billing_paused_reason
    assert store.next_probe_at == billed_store.now + timedelta(minutes=15)
    subscription = billed_store.subscription(
        billed_store.cycle(cycle_id).subscription_id
    )
    assert subscription.status == SubscriptionStatus.ACTIVE


@pytest.mark.parametrize("code", [30104, 30106])
def test_soft_decline_puts_subscription_past_due(
    billed_store: BilledStore, code: int
) -> None:
    cycle_id = first_attempt(billed_store, behavior=code)
    subscription_id = billed_store.cycle(cycle_id).subscription_id
    subscription = billed_store.subscription(subscription_id)
    assert subscription.status == SubscriptionStatus.PAST_DUE


def test_pending_payment_waits_an_hour(billed_store: BilledStore) -> None:
    cycle_id = first_attempt(billed_store, behavior="pending")
    cycle = billed_store.cycle(cycle_id)
    assert cycle.state == CycleState.PENDING
    assert cycle.next_attempt_at == billed_store.now + timedelta(hours=1)
    assert cycle.transaction_id is not None
    assert billed_store.charges() == 0


def test_paid_attempt_records_instrument(billed_store: BilledStore) -> None:
    cycle_id = first_attempt(billed_store, brand="MASTERCARD", last_4="5454")
    cycle = billed_store.cycle(cycle_id)
    (attempt,) = billed_store.attempts(cycle_id)
    assert cycle.state == CycleState.PAID
    assert cycle.next_attempt_at is None
    assert attempt.instrument_type == "stored_card"
    assert attempt.instrument_brand == "MASTERCARD"
    assert attempt.instrument_last4 == "5454"
    assert attempt.instrument_fingerprint is not None
    assert len(attempt.instrument_fingerprint) == 64
    assert billed_store.charges(cycle.order_id) == 1


FAULT_CASES = [
    ("payments", "server_error", {"status": 500}, CycleState.UNKNOWN, FIVE_MINUTES, 0),
    ("payments", "server_error", {"status": 502}, CycleState.UNKNOWN, FIVE_MINUTES, 0),
    ("payments", "server_error", {"status": 503}, CycleState.UNKNOWN, FIVE_MINUTES, 0),
    ("payments", "drop_after_charge", {}, CycleState.UNKNOWN, FIVE_MINUTES, 1),
    (
        "payments",
        "stall_after_charge",
        {"delay": 1.0},
        CycleState.UNKNOWN,
        FIVE_MINUTES,
        1,
    ),
    (
        "payments",
        "rate_limit",
        {"delay": 2.0},
        CycleState.RETRY_SCHEDULED,
        timedelta(seconds=2),
        0,
    ),
    ("payments", "rate_limit_bare", {}, CycleState.RETRY_SCHEDULED, FIVE_MINUTES, 0),
    (
        "payments",
        "error",
        {"status": 401, "code": 10001},
        CycleState.RETRY_SCHEDULED,
        FIVE_MINUTES,
        0,
    ),
    ("access_tokens", "server_error", {}, CycleState.RETRY_SCHEDULED, FIVE_MINUTES, 0),
    (
        "access_tokens",
        "error",
        {"code": 30100},
        CycleState.RETRY_SCHEDULED,
        FIVE_MINUTES,
        0,
    ),
    ("access_tokens", "error", {"code": 30101}, CycleState.UNKNOWN, AT_ONCE, 0),
    ("methods", "error", {"code": 30003}, CycleState.UNKNOWN, AT_ONCE, 0),
    ("methods", "server_error", {}, CycleState.RETRY_SCHEDULED, FIVE_MINUTES, 0),
    ("orders", "server_error", {}, CycleState.RETRY_SCHEDULED, FIVE_MINUTES, 0),
    ("orders", "error", {"status": 400}, CycleState.NEEDS_REVIEW, None, 0),
    ("orders", "error", {"status": 401}, CycleState.RETRY_SCHEDULED, AT_ONCE, 0),
    ("orders", "error", {"status": 403}, CycleState.RETRY_SCHEDULED, AT_ONCE, 0),
    (
        "orders",
        "slow",
        {"delay": 1.0},
        CycleState.RETRY_SCHEDULED,
        FIVE_MINUTES,
        0,
    ),
]


def fault_id(case: tuple) -> str:
    endpoint, kind, options = case[:3]
    detail = "-".join(str(value) for value in options.values() if value != 1.0)
    return "-".join(part for part in (endpoint, kind, detail) if part)


@pytest.mark.parametrize(
    ("endpoint", "kind", "options", "state", "delay", "charges"),
    FAULT_CASES,
    ids=[fault_id(case) for case in FAULT_CASES],
)
def test_sandbox_fault(
    billed_store: BilledStore,
    endpoint: str,
    kind: str,
    options: dict[str, Any],
    state: CycleState,
    delay: timedelta | None,
    charges: int,
) -> None:
    runtime = billed_store.runtime
    runtime.settings = replace(runtime.settings, http_read_timeout=SHORT_READ_TIMEOUT)
    billed_store.inject(endpoint, kind, **options)
    cycle_id = first_attempt(billed_store)
    cycle = billed_store.cycle(cycle_id)
    assert cycle.state == state
    assert cycle.next_attempt_at == expected_next(billed_store, delay)
    assert billed_store.charges() == charges
    (attempt,) = billed_store.attempts(cycle_id)
    assert attempt.outcome != OutcomeClass.IN_FLIGHT
    assert attempt.finished_at == billed_store.now


@pytest.mark.parametrize("status", [401, 403])
def test_store_api_auth_error_pauses_store(
    billed_store: BilledStore, status: int
) -> None:
    billed_store.inject("orders", "error", status=status)
    cycle_id = first_attempt(billed_store)
    (attempt,) = billed_store.attempts(cycle_id)
    assert attempt.outcome == OutcomeClass.MERCHANT_CONFIG
    assert attempt.payment_sent_at is None
    assert billed_store.store().billing_paused is True
