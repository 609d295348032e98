"""Read a cycle's attempt history and its store's settings as decision facts."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import (
    BillingCycle,
    ChargeAttempt,
    EndOfDunning,
    OutcomeClass,
    Subscription,
)
from rebill.decisions import AttemptRecord, CycleFacts
from rebill.policy import Policy, policy_for


def load_facts(
    session: Session, cycle: BillingCycle, *, exclude_attempt: int | None = None
) -> CycleFacts:
    """Read what the decisions need: finished attempts, wait and store settings."""
    subscription = cycle.subscription
    store = subscription.store
    policy = policy_for(store.retry_policy)
    attempts = session.scalars(
        sa.select(ChargeAttempt)
        .where(
            ChargeAttempt.cycle_id == cycle.id,
            ChargeAttempt.outcome != OutcomeClass.IN_FLIGHT,
        )
        .order_by(ChargeAttempt.number)
    ).all()
    history = tuple(
        attempt_record(attempt) for attempt in attempts if attempt.id != exclude_attempt
    )
    return CycleFacts(
        history=history,
        wait_started_at=cycle.wait_started_at,
        wait_checks=cycle.wait_checks,
        order_rebuilds=cycle.order_rebuilds,
        store_timezone=store.timezone,
        billing_hour=store.billing_hour,
        end_of_dunning=end_of_dunning_action(subscription, policy),
    )


def attempt_record(attempt: ChargeAttempt) -> AttemptRecord:
    return AttemptRecord(
        outcome=OutcomeClass(attempt.outcome),
        started_at=attempt.started_at,
        finished_at=attempt.finished_at or attempt.started_at,
        http_status=attempt.http_status,
        error_code=attempt.error_code,
        payment_sent=attempt.payment_sent_at is not None,
        instrument_fingerprint=attempt.instrument_fingerprint,
    )


def end_of_dunning_action(subscription: Subscription, policy: Policy) -> EndOfDunning:
    """Return the subscription's own end-of-dunning action, else the store's."""
    if subscription.end_of_dunning_action:
        return EndOfDunning(subscription.end_of_dunning_action)
    return policy.end_of_dunning
