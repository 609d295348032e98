"""One renewal: claim the cycle, make sure its order exists, charge, record.

The claim is committed before any request that can move money leaves, and the
attempt is marked as sent (also committed) just before POST /payments. So after
a crash the database always tells whether a payment may have been taken, and a
duplicate delivery of the same task finds the cycle claimed and does nothing.

A paid renewal costs two store API requests (create order, PAT) when the
subscription remembers the instrument that paid last time; otherwise a third,
Get Payment Methods, finds one. worker.outcomes applies what follows each
outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from models import ChargeAttempt, CycleState, OutcomeClass, Subscription, utcnow
from rebill import cycles, logs
from rebill.client import BigCommerceClient, PaymentResult, StoredInstrument
from rebill.errors import BigCommerceError, RateLimitWait
from rebill.money import to_minor_units
from rebill.order_template import OrderTemplate
from rebill.runtime import Runtime
from worker.claim import Renewal, claim
from worker.instruments import (
    Choice,
    choose_instrument,
    fingerprint,
    usable_instruments,
)
from worker.outcomes import (
    AttemptEnd,
    end_unsent,
    end_without_instrument,
    record_failure,
    record_result,
    release_for_wait,
)

logger = logging.getLogger(__name__)

# The order status in which BigCommerce accepts a payment: 0 is Incomplete.
PAYABLE_ORDER_STATUS = 0


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
    external_id = external_order_id(cycle.id, cycle.order_rebuilds)
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


def external_order_id(cycle_id: int, rebuilds: int = 0) -> str:
    """Return the tag that finds a cycle's order again after a lost response.

    An order created again after an order problem gets a new tag, so a search
    never returns the order that had the problem.
    """
    base = f"rebill-cycle-{cycle_id}"
    return base if rebuilds == 0 else f"{base}-{rebuilds}"


def check_order(
    renewal: Renewal, order: dict[str, Any], runtime: Runtime, now: datetime
) -> None:
    """Stop before charging an order whose status or total is not what we sent.

    An order out of Incomplete status is an order problem: reconciliation reads
    it next, since an earlier try may have paid it. A total that differs from
    the subscription's amount is our data's problem and waits in review.
    """
    cycle = renewal.cycle
    if order.get("status_id") != PAYABLE_ORDER_STATUS:
        message = f"order status_id is {order.get('status_id')}, expected 0"
        end_attempt_early(renewal, runtime, now, OutcomeClass.ORDER_PROBLEM, message)
    total = order_total_minor_units(order, cycle.currency)
    if total != cycle.amount_minor:
        message = (
            f"order total_inc_tax is {order.get('total_inc_tax')!r} "
            f"{cycle.currency}, expected {cycle.amount_minor} minor units"
        )
        end_attempt_early(renewal, runtime, now, OutcomeClass.OUR_DATA, message)


def end_attempt_early(
    renewal: Renewal,
    runtime: Runtime,
    now: datetime,
    outcome: OutcomeClass,
    message: str,
) -> None:
    """End the attempt before any payment with the decision for `outcome`."""
    from worker.outcomes import decide, finish

    end = AttemptEnd(outcome, message)
    decision = decide(renewal, end, now, payment_sent=False)
    finish(renewal, runtime, now, end, decision)
    logger.warning("%s: %s; cycle %s", renewal.ids, message, decision.state)
    raise AttemptEnded(decision.state)


def order_total_minor_units(order: dict[str, Any], currency: str) -> int | None:
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
    choice = select_instrument(renewal, client, order_id, clock().date())
    instrument = choice.instrument
    if instrument is None:
        state = end_without_instrument(renewal, runtime, clock(), choice.reason)
        raise AttemptEnded(state)
    renewal.instrument = instrument
    pat = client.create_payment_access_token(order_id)
    mark_sent(renewal, instrument, runtime, clock())
    logger.info(
        "%s: charging %s (%s)", renewal.ids, instrument.describe(), choice.reason
    )
    return client.process_payment(order_id, pat, instrument)


def select_instrument(
    renewal: Renewal, client: BigCommerceClient, order_id: int, today: date
) -> Choice:
    """Charge the instrument that paid last time, else read the offered ones.

    The remembered instrument is skipped when its card has expired or it was
    declined earlier in this cycle; Get Payment Methods is read then.
    """
    remembered = remembered_instrument(renewal.subscription)
    if remembered is not None and usable_instruments(
        [remembered], today, renewal.excluded
    ):
        return Choice(remembered, "instrument of the last paid renewal")
    offered = client.get_payment_methods(order_id)
    return choose_instrument(
        offered,
        preferred_method=renewal.subscription.payment_method_id,
        preferred_token=renewal.subscription.instrument_token,
        today=today,
        excluded=renewal.excluded,
    )


def remembered_instrument(subscription: Subscription) -> StoredInstrument | None:
    """Return the instrument of the last paid renewal, if the subscription has one."""
    if not (
        subscription.instrument_type
        and subscription.instrument_token
        and subscription.payment_method_id
    ):
        return None
    return StoredInstrument(
        payment_method_id=subscription.payment_method_id,
        type=subscription.instrument_type,
        token=subscription.instrument_token,
        brand=subscription.instrument_brand,
        last_4=subscription.instrument_last4,
        expiry_month=subscription.instrument_expiry_month,
        expiry_year=subscription.instrument_expiry_year,
    )


def mark_sent(
    renewal: Renewal, instrument: StoredInstrument, runtime: Runtime, now: datetime
) -> None:
    """Commit that the payment is about to leave, or end the attempt unsent."""
    with runtime.sessions() as session:
        sent = cycles.mark_payment_sent(
            session,
            renewal.attempt_id,
            renewal.subscription.id,
            now,
            payment_method_id=instrument.payment_method_id,
            instrument_type=instrument.type,
            instrument_brand=instrument.brand,
            instrument_last4=instrument.last_4,
            instrument_fingerprint=fingerprint(instrument.token),
        )
        session.commit()
        if sent:
            return
        attempt = session.get(ChargeAttempt, renewal.attempt_id)
        still_open = attempt is not None and attempt.outcome == OutcomeClass.IN_FLIGHT
    if not still_open:
        logger.warning(
            "%s: attempt was ended by the scheduler, not sending", renewal.ids
        )
        raise AttemptEnded(CycleState.CHARGING)
    message = "subscription was paused or canceled before the payment was sent"
    end_unsent(
        renewal,
        runtime,
        now,
        AttemptEnd(OutcomeClass.NOT_CHARGED, message),
        CycleState.SKIPPED,
    )
    logger.info("%s: skipped, %s", renewal.ids, message)
    raise AttemptEnded(CycleState.SKIPPED)
