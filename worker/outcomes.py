"""Record how a charge attempt ended and apply the decision that follows.

Each function closes the attempt and moves the cycle in one transaction, and
changes nothing when the attempt was already closed (the scheduler recovered
it from a worker it thought dead): from then on reconciliation decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from models import BillingCycle, ChargeAttempt, CycleState, OutcomeClass, Subscription
from rebill import cycles, policy
from rebill.client import PaymentResult, StoredInstrument
from rebill.decisions import (
    DECLINES,
    AttemptRecord,
    Decision,
    decide_after_attempt,
    decide_no_instrument,
    next_probe_at,
)
from rebill.errors import BigCommerceError, RateLimited, RateLimitWait
from rebill.runtime import Runtime
from rebill.sentry import outcome_log_level
from worker.claim import Renewal
from worker.instruments import fingerprint

logger = logging.getLogger(__name__)

# Outcomes of a probe attempt that do not show whether the store's payment
# configuration works again.
INCONCLUSIVE_PROBES = (
    OutcomeClass.MERCHANT_CONFIG,
    OutcomeClass.TRANSIENT,
    OutcomeClass.NOT_CHARGED,
)


@dataclass(frozen=True)
class AttemptEnd:
    """End of one attempt: the values written to its charge_attempts row."""

    outcome: OutcomeClass
    message: str
    http_status: int | None = None
    error_code: int | None = None
    transaction_id: str | None = None


def record_result(
    renewal: Renewal, result: PaymentResult, runtime: Runtime, now: datetime
) -> str:
    """Record a 201 response: paid, or pending until it settles."""
    signal = policy.SUCCESS if result.status == "success" else policy.PENDING_RESPONSE
    outcome = policy.RULES[signal].outcome
    end = AttemptEnd(
        outcome,
        f"{result.transaction_type} {result.status}",
        http_status=201,
        transaction_id=result.transaction_id,
    )
    decision = decide(renewal, end, now, payment_sent=True)
    finish(renewal, runtime, now, end, decision)
    logger.info("%s: %s (%s)", renewal.ids, decision.state, end.message)
    return decision.state


def record_failure(
    renewal: Renewal, error: BigCommerceError, runtime: Runtime, now: datetime
) -> str:
    """Classify a failed call by the policy table and apply its decision."""
    with runtime.sessions() as session:
        payment_sent = payment_was_sent(session, renewal.attempt_id)
    signal = policy.signal_of(error, payment_sent=payment_sent)
    rule = policy.rule_for(signal, payment_sent=payment_sent)
    end = AttemptEnd(
        rule.outcome,
        attempt_message(signal, error.detail),
        http_status=error.http_status,
        error_code=error.code,
    )
    retry_after = error.retry_after if isinstance(error, RateLimited) else None
    decision = decide(
        renewal, end, now, payment_sent=payment_sent, retry_after=retry_after
    )
    finish(renewal, runtime, now, end, decision)
    # ERROR, and so a Sentry event, only for outcomes a person must look at.
    logger.log(
        outcome_log_level(rule.outcome),
        "%s: %s, cycle %s (%s): %s",
        renewal.ids,
        rule.outcome,
        decision.state,
        rule.action,
        with_code(end.error_code, decision.reason),
    )
    return decision.state


def attempt_message(signal: int | str, detail: str) -> str:
    """Return the message stored for a failed attempt and its cycle.

    A BigCommerce error code is stored in its own column, and every view shows
    it beside the message, so the message does not repeat it. A signal that is
    not a code, such as "connection failed, nothing sent", leads the message.
    """
    if isinstance(signal, int):
        return detail
    return f"{signal}: {detail}"


def with_code(code: int | None, text: str) -> str:
    """Prefix `text` with the error code, for places that show no code column."""
    return text if code is None else f"code {code}: {text}"


def decide(
    renewal: Renewal,
    end: AttemptEnd,
    now: datetime,
    *,
    payment_sent: bool,
    retry_after: float | None = None,
) -> Decision:
    instrument = renewal.instrument
    record = AttemptRecord(
        outcome=end.outcome,
        started_at=renewal.claimed_at,
        finished_at=now,
        http_status=end.http_status,
        error_code=end.error_code,
        payment_sent=payment_sent,
        instrument_fingerprint=fingerprint(instrument.token) if instrument else None,
    )
    facts = renewal.facts_with(record)
    return decide_after_attempt(
        end.outcome,
        facts,
        renewal.policy,
        now,
        message=end.message,
        retry_after=retry_after,
    )


def end_without_instrument(
    renewal: Renewal, runtime: Runtime, now: datetime, reason: str
) -> str:
    """End an attempt that found no instrument to charge: wait for a new one."""
    end = AttemptEnd(OutcomeClass.NOT_CHARGED, reason)
    decision = decide_no_instrument(renewal.facts, renewal.policy, now, reason)
    finish(renewal, runtime, now, end, decision)
    logger.warning("%s: %s; cycle %s", renewal.ids, reason, decision.state)
    return decision.state


def end_unsent(
    renewal: Renewal,
    runtime: Runtime,
    now: datetime,
    end: AttemptEnd,
    state: CycleState,
    next_attempt_at: datetime | None = None,
) -> None:
    """End an attempt that sent no payment and move the cycle to `state`."""
    decision = Decision(state, next_attempt_at, end.message)
    if state is CycleState.NEEDS_REVIEW:
        logger.warning("%s: review: %s", renewal.ids, end.message)
    finish(renewal, runtime, now, end, decision)


def release_for_wait(
    renewal: Renewal, wait: RateLimitWait, runtime: Runtime, now: datetime
) -> None:
    """Give the cycle back, unsent, to be claimed again once the limiter allows.

    The limiter raises before its request leaves, so no payment was sent by
    this attempt even when it was already marked as about to be sent.
    """
    end_unsent(
        renewal,
        runtime,
        now,
        AttemptEnd(OutcomeClass.NOT_CHARGED, str(wait)),
        CycleState.RETRY_SCHEDULED,
        next_attempt_at=now + timedelta(seconds=wait.seconds),
    )
    logger.info(
        "%s: waiting %.2f s for the %s rate limit", renewal.ids, wait.seconds, wait.host
    )


def finish(
    renewal: Renewal,
    runtime: Runtime,
    now: datetime,
    end: AttemptEnd,
    decision: Decision,
) -> bool:
    """Close the attempt and apply `decision` in one transaction.

    Returns False, writing nothing, when the attempt was closed already.
    """
    with runtime.sessions() as session:
        closed = cycles.finish_attempt(
            session,
            renewal.attempt_id,
            now,
            outcome=end.outcome,
            http_status=end.http_status,
            error_code=end.error_code,
            message=end.message,
            transaction_id=end.transaction_id,
        )
        if not closed:
            session.rollback()
            logger.warning(
                "%s: attempt %d was closed by the scheduler; its outcome (%s) is "
                "left to reconciliation",
                renewal.ids,
                renewal.attempt_id,
                end.outcome,
            )
            return False
        apply_to_cycle(session, renewal, end, decision, now)
        apply_to_subscription(session, renewal, end, decision, now)
        apply_to_store(session, renewal, end, decision, now)
        session.commit()
    return True


def apply_to_cycle(
    session: Session,
    renewal: Renewal,
    end: AttemptEnd,
    decision: Decision,
    now: datetime,
) -> None:
    values: dict[str, Any] = {
        "last_outcome": end.outcome,
        "last_error_code": end.error_code,
    }
    if end.transaction_id is not None:
        values["transaction_id"] = end.transaction_id
    if end.outcome in DECLINES:
        values["decline_count"] = BillingCycle.decline_count + 1
    if decision.state is CycleState.PAID:
        values["paid_at"] = now
        values["last_error_message"] = None
    cycles.apply_decision(
        session,
        renewal.cycle.id,
        decision,
        now,
        expected=(CycleState.CHARGING,),
        **values,
    )


def apply_to_subscription(
    session: Session,
    renewal: Renewal,
    end: AttemptEnd,
    decision: Decision,
    now: datetime,
) -> None:
    subscription = renewal.subscription
    if decision.subscription_status is not None:
        cycles.set_subscription_status(
            session, subscription.id, decision.subscription_status, now
        )
    instrument = renewal.instrument
    if instrument is None:
        return
    if end.outcome is OutcomeClass.PAID:
        remember_instrument(session, subscription.id, instrument, now)
    elif end.outcome is OutcomeClass.HARD_DECLINE and is_remembered(
        subscription, instrument
    ):
        forget_instrument(session, subscription.id, now)


def apply_to_store(
    session: Session,
    renewal: Renewal,
    end: AttemptEnd,
    decision: Decision,
    now: datetime,
) -> None:
    store = renewal.store
    if decision.pause_store:
        probe_at = next_probe_at(0, renewal.policy, now)
        reason = with_code(end.error_code, decision.reason)
        if cycles.pause_store(session, store.id, reason, now, next_probe_at=probe_at):
            # WARNING: the merchant_config outcome was logged at ERROR already,
            # which makes one Sentry event for the pause.
            logger.warning(
                "store %s: billing paused: %s; first probe at %s",
                store.store_hash,
                reason,
                probe_at.isoformat(),
            )
        return
    is_probe = store.billing_paused and store.probe_cycle_id == renewal.cycle.id
    if is_probe and end.outcome not in INCONCLUSIVE_PROBES:
        released = cycles.resume_store(session, store.id, now)
        logger.warning(
            "store %s: billing resumed: probe cycle %d ended %s; %d cycle(s) released",
            store.store_hash,
            renewal.cycle.id,
            end.outcome,
            released,
        )


def remember_instrument(
    session: Session, subscription_id: int, instrument: StoredInstrument, now: datetime
) -> None:
    """Store the instrument that paid, to charge it first next time."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        return
    subscription.payment_method_id = instrument.payment_method_id
    subscription.instrument_token = instrument.token
    subscription.instrument_type = instrument.type
    subscription.instrument_brand = instrument.brand
    subscription.instrument_last4 = instrument.last_4
    subscription.instrument_expiry_month = instrument.expiry_month
    subscription.instrument_expiry_year = instrument.expiry_year
    subscription.updated_at = now


def is_remembered(subscription: Subscription, instrument: StoredInstrument) -> bool:
    return subscription.instrument_token == instrument.token


def forget_instrument(session: Session, subscription_id: int, now: datetime) -> None:
    """Drop a declined instrument, so the next renewal reads the offered ones."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        return
    subscription.payment_method_id = None
    subscription.instrument_token = None
    subscription.instrument_type = None
    subscription.instrument_brand = None
    subscription.instrument_last4 = None
    subscription.instrument_expiry_month = None
    subscription.instrument_expiry_year = None
    subscription.updated_at = now


def payment_was_sent(session: Session, attempt_id: int) -> bool:
    attempt = session.get(ChargeAttempt, attempt_id)
    return attempt is not None and attempt.payment_sent_at is not None
