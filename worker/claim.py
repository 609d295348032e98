"""Claim a cycle for one charge attempt, after the checks that may stop it.

A cycle is claimed only if it is claimable and its subscription is active or
past due. Its store's billing must not be paused, unless the cycle is the
store's probe, and it must not be so late that an operator must approve it.
The claim is a compare-and-set committed before any request that can move
money.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from models import (
    CLAIMABLE_STATES,
    BillingCycle,
    CycleState,
    OutcomeClass,
    Store,
    Subscription,
    SubscriptionStatus,
)
from rebill import cycles
from rebill.client import StoredInstrument
from rebill.decisions import AttemptRecord, CycleFacts, Decision, is_stale
from rebill.history import load_facts
from rebill.limiter import StoreGate
from rebill.policy import Policy, policy_for
from rebill.runtime import Runtime

logger = logging.getLogger(__name__)


@dataclass
class Renewal:
    """One claimed cycle, read once and used without a session."""

    cycle: BillingCycle
    subscription: Subscription
    store: Store
    attempt_id: int
    claimed_at: datetime
    policy: Policy
    facts: CycleFacts  # the attempts before this one
    gate: StoreGate
    instrument: StoredInstrument | None = field(default=None)

    @property
    def ids(self) -> str:
        """Log prefix naming store, subscription, cycle and order."""
        return (
            f"store {self.store.store_hash} subscription {self.subscription.id} "
            f"cycle {self.cycle.id} order {self.cycle.order_id or '-'}"
        )

    @property
    def excluded(self) -> frozenset[str]:
        """Fingerprints of the instruments hard-declined earlier in this cycle."""
        return frozenset(
            item.instrument_fingerprint
            for item in self.facts.history
            if item.outcome is OutcomeClass.HARD_DECLINE and item.instrument_fingerprint
        )

    def facts_with(self, record: AttemptRecord) -> CycleFacts:
        """Return the facts with this attempt's record appended."""
        return CycleFacts(
            history=(*self.facts.history, record),
            wait_started_at=self.facts.wait_started_at,
            wait_checks=self.facts.wait_checks,
            order_rebuilds=self.facts.order_rebuilds,
            store_timezone=self.facts.store_timezone,
            billing_hour=self.facts.billing_hour,
            end_of_dunning=self.facts.end_of_dunning,
        )


def claim(cycle_id: int, runtime: Runtime, now: datetime) -> Renewal | None:
    """Claim the cycle and open an attempt; None if it must not be charged now."""
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        if cycle is None:
            logger.warning("cycle %d: not found, nothing to do", cycle_id)
            return None
        stale_after = timedelta(days=runtime.settings.stale_after_days)
        if not may_claim(session, cycle, now, stale_after):
            session.commit()
            return None
        # The limiter admits the renewal before any attempt is opened, so a
        # store out of quota defers the task (RateLimitWait) with nothing to
        # undo. It may sleep briefly, so the read transaction ends first.
        requests = expected_api_requests(cycle)
        session.commit()
        gate = runtime.gate_for(cycle.subscription.store)
        gate.admit_renewal(requests, ticket=str(cycle.id))
        attempt_id = cycles.claim_cycle(session, cycle, now)
        if attempt_id is None:
            logger.info("%s: claimed by another worker", prefix(cycle))
            session.rollback()
            return None
        session.commit()
        session.refresh(cycle)
        renewal = build_renewal(session, cycle, attempt_id, now, gate)
    logger.info("%s: claimed, attempt %d", renewal.ids, cycle.attempt_count)
    return renewal


def expected_api_requests(cycle: BillingCycle) -> int:
    """Return the store API requests a renewal of the unclaimed cycle makes.

    A PAT, plus Get Payment Methods unless the subscription remembers the
    instrument that paid last time, plus creating the order when the cycle has
    none and, after an earlier try, looking for the order that try may have
    made. A remembered instrument that turns out unusable costs one request
    more than reserved, which the limiter then admits on its own.
    """
    requests = 1
    if not cycle.subscription.instrument_type:
        requests += 1
    if cycle.order_id is None:
        requests += 2 if cycle.attempt_count > 0 else 1
    return requests


def prefix(cycle: BillingCycle) -> str:
    subscription = cycle.subscription
    return (
        f"store {subscription.store.store_hash} subscription {subscription.id} "
        f"cycle {cycle.id}"
    )


def may_claim(
    session: Session, cycle: BillingCycle, now: datetime, stale_after: timedelta
) -> bool:
    """Check what stops a claim; skip or send to review what must not be charged."""
    subscription = cycle.subscription
    store = subscription.store
    if cycle.state not in CLAIMABLE_STATES:
        logger.info("%s: already %s, nothing to do", prefix(cycle), cycle.state)
        return False
    if subscription.status in (SubscriptionStatus.PAUSED, SubscriptionStatus.CANCELED):
        reason = f"subscription is {subscription.status}"
        move(session, cycle, Decision(CycleState.SKIPPED, None, reason), now)
        logger.info("%s: skipped, %s", prefix(cycle), reason)
        return False
    if store.billing_paused and store.probe_cycle_id != cycle.id:
        logger.info(
            "%s: not charged, store billing is paused (%s)",
            prefix(cycle),
            store.billing_paused_reason,
        )
        return False
    due_at = cycle.next_attempt_at or cycle.scheduled_at
    approved = cycle.approved_at is not None
    if is_stale(due_at, now, stale_after, approved=approved):
        send_late_to_review(session, cycle, due_at, now)
        return False
    return True


def send_late_to_review(
    session: Session, cycle: BillingCycle, due_at: datetime, now: datetime
) -> None:
    late = now - due_at
    reason = (
        f"renewal is {format_lateness(late)} late (due {due_at.isoformat()}); it "
        f"is not charged until an operator runs 'rebill cycles approve {cycle.id}'"
    )
    move(session, cycle, Decision(CycleState.NEEDS_REVIEW, None, reason), now)
    logger.warning("%s: review: %s", prefix(cycle), reason)


def format_lateness(late: timedelta) -> str:
    hours = late.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def move(
    session: Session, cycle: BillingCycle, decision: Decision, now: datetime
) -> None:
    cycles.apply_decision(session, cycle.id, decision, now, expected=CLAIMABLE_STATES)


def build_renewal(
    session: Session,
    cycle: BillingCycle,
    attempt_id: int,
    now: datetime,
    gate: StoreGate,
) -> Renewal:
    subscription = cycle.subscription
    store = subscription.store
    policy = policy_for(store.retry_policy)
    return Renewal(
        cycle=cycle,
        subscription=subscription,
        store=store,
        attempt_id=attempt_id,
        claimed_at=now,
        policy=policy,
        facts=load_facts(session, cycle, exclude_attempt=attempt_id),
        gate=gate,
    )
