"""JSON shapes of subscriptions, renewals (billing cycles) and charge attempts.

An instrument token is a secret, so a subscription shows only whether it has
one. Amounts appear twice: as a decimal string in the currency's unit and as
an integer in minor units.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models import BillingCycle, ChargeAttempt, Subscription
from rebill.money import from_minor_units


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def amount(amount_minor: int, currency: str) -> str:
    return str(from_minor_units(amount_minor, currency))


def subscription_json(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "store": subscription.store.store_hash,
        "reference": subscription.reference,
        "customer_id": subscription.customer_id,
        "status": subscription.status,
        "cron": subscription.cron,
        "timezone": subscription.timezone,
        "currency": subscription.currency,
        "amount": amount(subscription.amount_minor, subscription.currency),
        "amount_minor": subscription.amount_minor,
        "next_billing_at": iso(subscription.next_billing_at),
        "cancel_at": iso(subscription.cancel_at),
        "payment_method_id": subscription.payment_method_id,
        "has_instrument_token": subscription.instrument_token is not None,
        "end_of_dunning_action": subscription.end_of_dunning_action,
        "order_template": subscription.order_template,
        "created_at": iso(subscription.created_at),
        "updated_at": iso(subscription.updated_at),
    }


def cycle_json(cycle: BillingCycle) -> dict[str, Any]:
    return {
        "id": cycle.id,
        "subscription_id": cycle.subscription_id,
        "scheduled_at": iso(cycle.scheduled_at),
        "state": cycle.state,
        "order_id": cycle.order_id,
        "currency": cycle.currency,
        "amount": amount(cycle.amount_minor, cycle.currency),
        "amount_minor": cycle.amount_minor,
        "attempt_count": cycle.attempt_count,
        "decline_count": cycle.decline_count,
        "next_attempt_at": iso(cycle.next_attempt_at),
        "last_outcome": cycle.last_outcome,
        "last_error_code": cycle.last_error_code,
        "last_error_message": cycle.last_error_message,
        "transaction_id": cycle.transaction_id,
        "paid_at": iso(cycle.paid_at),
        "created_at": iso(cycle.created_at),
        "updated_at": iso(cycle.updated_at),
    }


def attempt_json(attempt: ChargeAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "outcome": attempt.outcome,
        "started_at": iso(attempt.started_at),
        "payment_sent_at": iso(attempt.payment_sent_at),
        "finished_at": iso(attempt.finished_at),
        "http_status": attempt.http_status,
        "error_code": attempt.error_code,
        "message": attempt.message,
        "payment_method_id": attempt.payment_method_id,
        "instrument_type": attempt.instrument_type,
        "instrument_brand": attempt.instrument_brand,
        "instrument_last4": attempt.instrument_last4,
        "transaction_id": attempt.transaction_id,
    }
