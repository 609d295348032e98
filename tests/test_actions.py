"""Operator actions against a store billed through the sandbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from models import (
    AuditEntry,
    BillingCycle,
    CycleState,
    OutcomeClass,
    SubscriptionStatus,
)
from rebill import actions
from rebill.errors import ActionRejected, RecordNotFound
from tests.fixtures.billed_store import BilledStore
from worker.claim import claim
from worker.renewal import charge, ensure_order

ACTOR = "operator alice"


def audit_entries(billed_store: BilledStore) -> list[AuditEntry]:
    with billed_store.runtime.sessions() as session:
        return list(session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)))


def late_cycle(billed_store: BilledStore) -> int:
    """Open a renewal due five days ago; the worker sends it to review."""
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(
        customer, next_billing_at=billed_store.now - timedelta(days=5)
    )
    billed_store.tick_and_work()
    return billed_store.cycle().id


def soft_declined_cycle(billed_store: BilledStore) -> tuple[int, int]:
    customer, _ = billed_store.add_customer({"is_default": True, "behavior": 30106})
    subscription_id = billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    return billed_store.cycle().id, subscription_id


def test_late_renewal_waits_in_review(billed_store: BilledStore) -> None:
    cycle_id = late_cycle(billed_store)
    cycle = billed_store.cycle(cycle_id)
    assert cycle.state == CycleState.NEEDS_REVIEW
    assert cycle.review_reason is not None
    assert "late" in cycle.review_reason
    assert cycle.attempt_count == 0
    assert billed_store.charges() == 0


def test_approve_releases_late_renewal(billed_store: BilledStore) -> None:
    cycle_id = late_cycle(billed_store)
    with billed_store.runtime.sessions() as session:
        result = actions.approve_cycle(
            session, cycle_id, now=billed_store.now, actor=ACTOR
        )
        session.commit()
    assert result.cycle_id == cycle_id
    cycle = billed_store.cycle(cycle_id)
    assert cycle.state == CycleState.RETRY_SCHEDULED
    assert cycle.approved_by == ACTOR
    assert cycle.next_attempt_at == billed_store.now
    billed_store.tick_and_work()
    assert billed_store.cycle(cycle_id).state == CycleState.PAID
    assert billed_store.charges() == 1
    entries = audit_entries(billed_store)
    assert [entry.action for entry in entries] == ["approve_cycle"]
    assert entries[0].actor == ACTOR
    assert entries[0].cycle_id == cycle_id


def test_approve_rejects_cycle_not_in_review(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    cycle_id = billed_store.cycle().id
    with billed_store.runtime.sessions() as session:
        with pytest.raises(ActionRejected) as raised:
            actions.approve_cycle(session, cycle_id, now=billed_store.now, actor=ACTOR)
        session.commit()
    assert "paid" in str(raised.value)
    assert f"cycle {cycle_id}" in str(raised.value)
    assert audit_entries(billed_store) == []


def test_approve_rejects_unknown_cycle_id(billed_store: BilledStore) -> None:
    with billed_store.runtime.sessions() as session:
        with pytest.raises(RecordNotFound) as raised:
            actions.approve_cycle(session, 999, now=billed_store.now, actor=ACTOR)
    assert str(raised.value) == "cycle 999 not found"


def review_after_lost_answer(billed_store: BilledStore) -> int:
    """Charge with the answer dropped, then put the cycle in review by hand."""
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.inject("payments", "drop_after_charge")
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.UNKNOWN
    with billed_store.runtime.sessions() as session:
        session.execute(
            sa.update(BillingCycle)
            .where(BillingCycle.id == cycle.id)
            .values(state=CycleState.NEEDS_REVIEW, review_reason="checked by hand")
        )
        session.commit()
    return cycle.id


def test_approve_rejects_cycle_that_may_be_paid(billed_store: BilledStore) -> None:
    cycle_id = review_after_lost_answer(billed_store)
    with billed_store.runtime.sessions() as session:
        with pytest.raises(ActionRejected) as raised:
            actions.approve_cycle(session, cycle_id, now=billed_store.now, actor=ACTOR)
    assert "reconciles first" in str(raised.value)
    assert billed_store.cycle(cycle_id).state == CycleState.NEEDS_REVIEW


def test_retry_reconciles_and_finds_payment(billed_store: BilledStore) -> None:
    cycle_id = review_after_lost_answer(billed_store)
    with billed_store.runtime.sessions() as session:
        result = actions.retry_cycle_now(
            session,
            cycle_id,
            now=billed_store.now,
            actor=ACTOR,
            client_for=billed_store.runtime.client_for,
        )
        session.commit()
    assert "marked paid" in result.message
    assert billed_store.cycle(cycle_id).state == CycleState.PAID
    billed_store.tick_and_work()
    assert billed_store.charges() == 1


def test_retry_after_unsent_payment_charges_once(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.inject("payments", "server_error", status=503)
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.UNKNOWN
    with billed_store.runtime.sessions() as session:
        actions.retry_cycle_now(
            session,
            cycle.id,
            now=billed_store.now,
            actor=ACTOR,
            client_for=billed_store.runtime.client_for,
        )
        session.commit()
    assert billed_store.cycle(cycle.id).state == CycleState.RETRY_SCHEDULED
    billed_store.tick_and_work()
    assert billed_store.cycle(cycle.id).state == CycleState.PAID
    assert billed_store.charges(cycle.order_id) == 1


def test_retry_soft_decline_makes_new_attempt(billed_store: BilledStore) -> None:
    cycle_id, _ = soft_declined_cycle(billed_store)
    tomorrow_at_nine = (billed_store.now + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    assert billed_store.cycle(cycle_id).next_attempt_at == tomorrow_at_nine
    with billed_store.runtime.sessions() as session:
        actions.retry_cycle_now(
            session,
            cycle_id,
            now=billed_store.now,
            actor=ACTOR,
            client_for=billed_store.runtime.client_for,
        )
        session.commit()
    billed_store.tick_and_work()
    attempts = billed_store.attempts(cycle_id)
    assert len(attempts) == 2
    assert attempts[1].error_code == 30106
    assert billed_store.charges() == 0


def test_retry_rejects_duplicate_transaction(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer({"is_default": True, "behavior": 30105})
    billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    cycle_id = billed_store.cycle().id
    with billed_store.runtime.sessions() as session:
        with pytest.raises(ActionRejected) as raised:
            actions.retry_cycle_now(
                session,
                cycle_id,
                now=billed_store.now,
                actor=ACTOR,
                client_for=billed_store.runtime.client_for,
            )
    assert "30105" in str(raised.value)
    assert billed_store.cycle(cycle_id).state == CycleState.UNKNOWN


def test_skip_ends_dunning(billed_store: BilledStore) -> None:
    cycle_id, subscription_id = soft_declined_cycle(billed_store)
    assert (
        billed_store.subscription(subscription_id).status == SubscriptionStatus.PAST_DUE
    )
    with billed_store.runtime.sessions() as session:
        actions.skip_cycle(session, cycle_id, now=billed_store.now, actor=ACTOR)
        session.commit()
    assert billed_store.cycle(cycle_id).state == CycleState.SKIPPED
    assert (
        billed_store.subscription(subscription_id).status == SubscriptionStatus.ACTIVE
    )


def test_skip_rejects_unknown_outcome(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.inject("payments", "drop_after_charge")
    billed_store.tick_and_work()
    cycle_id = billed_store.cycle().id
    with billed_store.runtime.sessions() as session:
        with pytest.raises(ActionRejected):
            actions.skip_cycle(session, cycle_id, now=billed_store.now, actor=ACTOR)
    assert billed_store.cycle(cycle_id).state == CycleState.UNKNOWN


def test_cancel_skips_queued_cycle(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    subscription_id = billed_store.add_subscription(customer)
    billed_store.tick()
    with billed_store.runtime.sessions() as session:
        result = actions.cancel_subscription(
            session, subscription_id, now=billed_store.now, actor=ACTOR
        )
        session.commit()
    assert "1 open cycle(s) skipped" in result.message
    billed_store.work()
    assert billed_store.cycle().state == CycleState.SKIPPED
    assert (
        billed_store.subscription(subscription_id).status == SubscriptionStatus.CANCELED
    )
    assert billed_store.charges() == 0


def test_cancel_during_charge_sends_nothing(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    subscription_id = billed_store.add_subscription(customer)
    billed_store.tick()
    renewal = claim(billed_store.queue[0], billed_store.runtime, billed_store.now)
    assert renewal is not None
    client = billed_store.runtime.client_for(renewal.store)
    ensure_order(renewal, client, billed_store.runtime, lambda: billed_store.now)
    with billed_store.runtime.sessions() as session:
        actions.cancel_subscription(
            session, subscription_id, now=billed_store.now, actor=ACTOR
        )
        session.commit()
    with pytest.raises(Exception) as ended:
        charge(renewal, client, billed_store.runtime, lambda: billed_store.now)
    assert str(ended.value) == CycleState.SKIPPED
    assert billed_store.cycle().state == CycleState.SKIPPED
    attempt = billed_store.attempts(renewal.cycle.id)[0]
    assert attempt.outcome == OutcomeClass.NOT_CHARGED
    assert attempt.payment_sent_at is None
    assert billed_store.charges() == 0


def test_cancel_twice_is_rejected(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    subscription_id = billed_store.add_subscription(customer)
    with billed_store.runtime.sessions() as session:
        actions.cancel_subscription(
            session, subscription_id, now=billed_store.now, actor=ACTOR
        )
        with pytest.raises(ActionRejected) as raised:
            actions.cancel_subscription(
                session, subscription_id, now=billed_store.now, actor=ACTOR
            )
    assert "already canceled" in str(raised.value)


def test_paused_store_is_not_billed_until_resumed(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    with billed_store.runtime.sessions() as session:
        actions.pause_store(
            session,
            billed_store.store_id,
            now=billed_store.now,
            actor=ACTOR,
            reason="merchant asked",
        )
        session.commit()
    billed_store.tick_and_work()
    assert billed_store.cycles() == []
    with billed_store.runtime.sessions() as session:
        result = actions.resume_store(
            session, billed_store.store_id, now=billed_store.now, actor=ACTOR
        )
        session.commit()
    assert "resumed" in result.message
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.PAID
    assert [entry.action for entry in audit_entries(billed_store)] == [
        "pause_store",
        "resume_store",
    ]


def test_pause_needs_reason(billed_store: BilledStore) -> None:
    with billed_store.runtime.sessions() as session:
        with pytest.raises(ActionRejected) as raised:
            actions.pause_store(
                session,
                billed_store.store_id,
                now=billed_store.now,
                actor=ACTOR,
                reason=" ",
            )
    assert "reason" in str(raised.value)
    assert billed_store.store().billing_paused is False


def test_resume_rejects_store_not_paused(billed_store: BilledStore) -> None:
    with billed_store.runtime.sessions() as session:
        with pytest.raises(ActionRejected) as raised:
            actions.resume_store(
                session, billed_store.store_id, now=billed_store.now, actor=ACTOR
            )
    assert "abc123xyz" in str(raised.value)
