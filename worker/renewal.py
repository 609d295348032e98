"""One renewal: claim the cycle, make sure its order exists, charge, record.

The claim is committed before any request that can move money leaves, and the
attempt is marked as sent (also committed) just before POST /payments. So after
a crash the database always tells whether a payment may have been taken, and a
duplicate delivery of the same task finds the cycle claimed and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy.orm import Session

from models import (
    CLAIMABLE_STATES,
    BillingCycle,
    ChargeAttempt,
    CycleState,
    OutcomeClass,
    Store,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from rebill import cycles, logs
from rebill.client import BigCommerceClient, PaymentResult
from rebill.errors import BigCommerceError, RateLimitWait
from rebill.limiter import StoreGate
from rebill.money import to_minor_units
from rebill.order_template import OrderTemplate
from rebill.policy import classify_error
from rebill.runtime import Runtime
from rebill.sentry import outcome_log_level
from worker.instruments import choose_instrument

logger = logging.getLogger(__name__)

# Order statuses in which BigCommerce accepts a payment: 0 is Incomplete.
PAYABLE_ORDER_STATUS = 0


@dataclass
class Renewal:
    """The facts of one claimed cycle, read once and used without a session."""

    cycle: BillingCycle
    subscription: Subscription
    store: Store
    attempt_id: int
    gate: StoreGate

    @property
    def ids(self) -> str:
        """Log prefix naming store, subscription, cycle and order."""
        return (
            f"store {self.store.store_hash} subscription {self.subscription.id} "
            f"cycle {self.cycle.id} order {self.cycle.order_id or '-'}"
        )


class AttemptEnded(Exception):
    """The attempt ended before a payment was sent; the cycle is already updated."""


def renew(
    cycle_id: int, runtime: Runtime, *, clock: Callable[[], datetime] = utcnow
) -> str | None:
    """Run one renewal and return the cycle's new state (None if not claimed)."""
    renewal = claim(cycle_id, runtime, clock())
    if renewal is None:
        return None
    logs.bind_ids(
        store=renewal.store.store_hash,
        subscription=renewal.subscription.id,
        cycle=renewal.cycle.id,
        order=renewal.cycle.order_id,
    )
    client = runtime.client_for(renewal.store, renewal.gate)
    try:
        ensure_order(renewal, client, runtime, clock)
        result = charge(renewal, client, runtime, clock)
    except AttemptEnded as ended:
        return str(ended)
    except RateLimitWait as wait:
        release_for_wait(renewal, wait, runtime, clock())
        raise
    except BigCommerceError as error:
        return record_failure(renewal, error, runtime, clock())
    return record_result(renewal, result, runtime, clock())


def claim(cycle_id: int, runtime: Runtime, now: datetime) -> Renewal | None:
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        if cycle is None:
            logger.warning("cycle %d: not found, nothing to do", cycle_id)
            return None
        subscription = cycle.subscription
        store = subscription.store
        prefix = (
            f"store {store.store_hash} subscription {subscription.id} cycle {cycle.id}"
        )
        if cycle.state not in CLAIMABLE_STATES:
            logger.info("%s: already %s, nothing to do", prefix, cycle.state)
            return None
        if subscription.status in (
            SubscriptionStatus.PAUSED,
            SubscriptionStatus.CANCELED,
        ):
            skip(session, cycle, f"subscription is {subscription.status}", now)
            session.commit()
            logger.info("%s: skipped, subscription is %s", prefix, subscription.status)
            return None
        # Taking the store API requests first means a store out of quota
        # defers the task (RateLimitWait) before any attempt is opened.
        gate = runtime.gate_for(store)
        gate.reserve_api(expected_api_requests(cycle))
        attempt_id = cycles.claim_cycle(session, cycle, now)
        if attempt_id is None:
            logger.info("%s: claimed by another worker, nothing to do", prefix)
            session.rollback()
            return None
        session.commit()
        session.refresh(cycle)
        logger.info("%s: claimed, attempt %d", prefix, cycle.attempt_count)
        return Renewal(cycle, subscription, store, attempt_id, gate)


def expected_api_requests(cycle: BillingCycle) -> int:
    """Return the store API requests a renewal of the unclaimed cycle makes.

    Payment methods and a PAT, plus creating the order when the cycle has none
    and, after an earlier try, looking for the order that try may have made.
    """
    requests = 2
    if cycle.order_id is None:
        requests += 2 if cycle.attempt_count > 0 else 1
    return requests


def skip(session: Session, cycle: BillingCycle, reason: str, now: datetime) -> None:
    cycles.move_cycle(
        session,
        cycle.id,
        now,
        expected=CLAIMABLE_STATES,
        state=CycleState.SKIPPED,
        last_error_message=reason,
    )


def ensure_order(
    renewal: Renewal,
    client: BigCommerceClient,
    runtime: Runtime,
    clock: Callable[[], datetime],
) -> None:
    """Give the cycle an Incomplete order, finding one created by an earlier try."""
    cycle = renewal.cycle
    if cycle.order_id is not None:
        return
    external_id = external_order_id(cycle.id)
    found = client.find_orders(external_id) if cycle.attempt_count > 1 else []
    if found:
        order = found[0]
        logger.info("%s: found order %s from an earlier try", renewal.ids, order["id"])
    else:
        template = OrderTemplate.from_json(renewal.subscription.order_template)
        body = template.to_order_body(
            customer_id=renewal.subscription.customer_id,
            currency=cycle.currency,
            external_order_id=external_id,
        )
        order = client.create_order(body)
    cycle.order_id = int(order["id"])
    logs.bind_ids(order=cycle.order_id)
    with runtime.sessions() as session:
        cycles.set_order(session, cycle.id, cycle.order_id)
        session.commit()
    logger.info("%s: order ready", renewal.ids)
    check_order(renewal, order, runtime, clock())


def external_order_id(cycle_id: int) -> str:
    """The tag that finds a cycle's order again after a lost answer."""
    return f"rebill-cycle-{cycle_id}"


def check_order(renewal: Renewal, order: dict, runtime: Runtime, now: datetime) -> None:
    """Stop before charging an order whose status or total is not what we sent."""
    cycle = renewal.cycle
    problem = None
    if order.get("status_id") != PAYABLE_ORDER_STATUS:
        problem = (
            f"order status_id is {order.get('status_id')}, expected 0 (Incomplete)"
        )
    else:
        total = order_total_minor_units(order, cycle.currency)
        if total != cycle.amount_minor:
            problem = (
                f"order total_inc_tax is {order.get('total_inc_tax')!r} "
                f"{cycle.currency}, expected {cycle.amount_minor} minor units"
            )
    if problem is None:
        return
    end_attempt(
        renewal,
        runtime,
        now,
        outcome=OutcomeClass.ORDER_PROBLEM,
        state=CycleState.NEEDS_REVIEW,
        message=problem,
    )
    raise AttemptEnded(CycleState.NEEDS_REVIEW)


def order_total_minor_units(order: dict, currency: str) -> int | None:
    try:
        return to_minor_units(Decimal(str(order.get("total_inc_tax"))), currency)
    except (InvalidOperation, ValueError):
        return None


def charge(
    renewal: Renewal,
    client: BigCommerceClient,
    runtime: Runtime,
    clock: Callable[[], datetime],
) -> PaymentResult:
    """Choose the instrument, mint a PAT and send the payment once."""
    order_id = renewal.cycle.order_id
    assert order_id is not None
    offered = client.get_payment_methods(order_id)
    choice = choose_instrument(
        offered,
        preferred_method=renewal.subscription.payment_method_id,
        preferred_token=renewal.subscription.instrument_token,
        today=clock().date(),
    )
    instrument = choice.instrument
    if instrument is None:
        end_attempt(
            renewal,
            runtime,
            clock(),
            outcome=OutcomeClass.HARD_DECLINE,
            state=CycleState.FAILED,
            message=choice.reason,
        )
        raise AttemptEnded(CycleState.FAILED)
    pat = client.create_payment_access_token(order_id)
    with runtime.sessions() as session:
        sent = cycles.mark_payment_sent(
            session,
            renewal.attempt_id,
            clock(),
            payment_method_id=instrument.payment_method_id,
            instrument_type=instrument.type,
            instrument_brand=instrument.brand,
            instrument_last4=instrument.last_4,
        )
        session.commit()
    if not sent:
        logger.warning(
            "%s: attempt was ended by the scheduler, not sending", renewal.ids
        )
        raise AttemptEnded(CycleState.CHARGING)
    logger.info(
        "%s: charging %s (%s)", renewal.ids, instrument.describe(), choice.reason
    )
    return client.process_payment(order_id, pat, instrument)


def release_for_wait(
    renewal: Renewal, wait: RateLimitWait, runtime: Runtime, now: datetime
) -> None:
    """Give the cycle back, unsent, to be claimed again once the limiter allows.

    The limiter raises before a request leaves, and the payment request is the
    last one, so no payment was sent by this attempt.
    """
    end_attempt(
        renewal,
        runtime,
        now,
        outcome=OutcomeClass.NOT_CHARGED,
        state=CycleState.RETRY_SCHEDULED,
        message=str(wait),
        next_attempt_at=now + timedelta(seconds=wait.seconds),
    )
    logger.info(
        "%s: waiting %.2f s for the %s rate limit", renewal.ids, wait.seconds, wait.host
    )


def record_result(
    renewal: Renewal, result: PaymentResult, runtime: Runtime, now: datetime
) -> str:
    if result.status == "success":
        outcome, state = OutcomeClass.PAID, CycleState.PAID
    else:
        outcome, state = OutcomeClass.PENDING, CycleState.PENDING
    end_attempt(
        renewal,
        runtime,
        now,
        outcome=outcome,
        state=state,
        message=f"{result.transaction_type} {result.status}",
        transaction_id=result.transaction_id,
        paid_at=now if state is CycleState.PAID else None,
    )
    logger.info("%s: %s (%s)", renewal.ids, state, result.transaction_type)
    return state


def record_failure(
    renewal: Renewal, error: BigCommerceError, runtime: Runtime, now: datetime
) -> str:
    with runtime.sessions() as session:
        attempt_sent = _payment_was_sent(session, renewal.attempt_id)
    outcome = classify_error(error, payment_sent=attempt_sent)
    state = failure_state(outcome)
    end_attempt(
        renewal,
        runtime,
        now,
        outcome=outcome,
        state=state,
        message=error.detail,
        http_status=error.http_status,
        error_code=error.code,
    )
    # ERROR, and so a Sentry event, only for outcomes a person must look at.
    level = outcome_log_level(outcome)
    logger.log(level, "%s: %s, cycle %s: %s", renewal.ids, outcome, state, error)
    return state


def failure_state(outcome: OutcomeClass) -> CycleState:
    """The cycle state an outcome class leads to.

    NOTE: every failure other than an unknown outcome ends the cycle as FAILED;
    retry schedules per outcome class are not implemented yet.
    """
    if outcome is OutcomeClass.UNKNOWN:
        return CycleState.UNKNOWN
    return CycleState.FAILED


def _payment_was_sent(session: Session, attempt_id: int) -> bool:
    attempt = session.get(ChargeAttempt, attempt_id)
    return attempt is not None and attempt.payment_sent_at is not None


def end_attempt(
    renewal: Renewal,
    runtime: Runtime,
    now: datetime,
    *,
    outcome: OutcomeClass,
    state: CycleState,
    message: str | None,
    http_status: int | None = None,
    error_code: int | None = None,
    transaction_id: str | None = None,
    paid_at: datetime | None = None,
    next_attempt_at: datetime | None = None,
) -> None:
    """Close the attempt and move the cycle in one transaction."""
    with runtime.sessions() as session:
        cycles.finish_attempt(
            session,
            renewal.attempt_id,
            now,
            outcome=outcome,
            http_status=http_status,
            error_code=error_code,
            message=message,
            transaction_id=transaction_id,
        )
        values: dict[str, object] = {
            "last_outcome": outcome,
            "last_error_code": error_code,
            "last_error_message": message if outcome is not OutcomeClass.PAID else None,
        }
        if transaction_id is not None:
            values["transaction_id"] = transaction_id
        if paid_at is not None:
            values["paid_at"] = paid_at
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        cycles.move_cycle(
            session,
            renewal.cycle.id,
            now,
            expected=(CycleState.CHARGING, CycleState.UNKNOWN),
            state=state,
            **values,
        )
        session.commit()
