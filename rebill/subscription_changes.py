"""Changes a merchant makes to an existing subscription.

Each function validates against the subscription's current status, changes
the row and returns it. They take a session and `now` and never commit. A
change that the status forbids raises SubscriptionConflict, and invalid
values raise InvalidInput naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from models import Subscription, SubscriptionStatus
from rebill.errors import InvalidInput, RebillError
from rebill.subscription_input import SubscriptionSpec, parse_subscription_or_errors
from scheduler.schedule import next_run

# Fields a merchant may change after creation. customer_id and store are fixed
# because the stored instruments belong to the customer of one store.
UPDATABLE_FIELDS = frozenset(
    {
        "cron",
        "timezone",
        "currency",
        "order_template",
        "reference",
        "payment_method_id",
        "instrument_token",
        "end_of_dunning_action",
    }
)
INSTRUMENT_FIELDS = frozenset({"payment_method_id", "instrument_token"})


class SubscriptionConflict(RebillError):
    """The subscription's status does not allow the change (HTTP 409)."""

    def __init__(self, subscription_id: int, message: str) -> None:
        self.subscription_id = subscription_id
        super().__init__(f"subscription {subscription_id}: {message}")


class InvalidFields(RebillError):
    """Several fields of one request are invalid; `errors` has one per field."""

    def __init__(self, errors: list[InvalidInput]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


def subscription_record(subscription: Subscription) -> dict[str, Any]:
    """Return the subscription as an input record that the parser accepts."""
    return {
        "store": subscription.store.store_hash,
        "customer_id": subscription.customer_id,
        "cron": subscription.cron,
        "timezone": subscription.timezone,
        "currency": subscription.currency,
        "order_template": subscription.order_template,
        "reference": subscription.reference,
        "payment_method_id": subscription.payment_method_id,
        "instrument_token": subscription.instrument_token,
        "end_of_dunning_action": subscription.end_of_dunning_action,
    }


def update_subscription(
    subscription: Subscription,
    changes: Mapping[str, object],
    now: datetime,
    *,
    allowed: frozenset[str] = UPDATABLE_FIELDS,
    label: str = "request body",
) -> Subscription:
    """Apply `changes` (null clears an optional field) after validating the result.

    The changed record goes through the same parser as a new subscription, so
    every rule of new input applies. A new schedule moves next_billing_at to
    the schedule's first run after `now`. Raises InvalidFields naming every
    bad field; nothing is changed then.
    """
    errors = [
        InvalidInput(label, key, "unknown field or not changeable after creation")
        for key in changes
        if key not in allowed
    ]
    if errors:
        raise InvalidFields(errors)
    _require_not_canceled(subscription, "change")
    record = {**subscription_record(subscription), **changes}
    spec, errors = parse_subscription_or_errors(
        record, label=label, default_currency=subscription.currency
    )
    if errors:
        raise InvalidFields(errors)
    assert spec is not None
    _apply_spec(subscription, spec, now)
    return subscription


def _apply_spec(
    subscription: Subscription, spec: SubscriptionSpec, now: datetime
) -> None:
    schedule_changed = (spec.cron, spec.timezone) != (
        subscription.cron,
        subscription.timezone,
    )
    subscription.cron = spec.cron
    subscription.timezone = spec.timezone
    subscription.currency = spec.currency
    subscription.order_template = spec.order_template.to_json()
    subscription.amount_minor = spec.order_template.total_minor_units(spec.currency)
    subscription.reference = spec.reference
    subscription.payment_method_id = spec.payment_method_id
    subscription.instrument_token = spec.instrument_token
    subscription.end_of_dunning_action = spec.end_of_dunning_action
    subscription.updated_at = now
    if schedule_changed:
        subscription.next_billing_at = next_run(spec.cron, spec.timezone, now)
        if subscription.cancel_at is not None:
            subscription.cancel_at = subscription.next_billing_at


def pause(subscription: Subscription, now: datetime) -> Subscription:
    """Stop renewals until resumed; the worker skips a renewal already queued."""
    _require_not_canceled(subscription, "pause")
    subscription.status = SubscriptionStatus.PAUSED
    subscription.updated_at = now
    return subscription


def resume(subscription: Subscription, now: datetime) -> Subscription:
    """Make a paused subscription active again.

    A renewal date that passed while paused moves to the schedule's first run
    after `now`, so resuming never bills for the paused period.
    """
    _require_not_canceled(subscription, "resume")
    if subscription.status != SubscriptionStatus.PAUSED:
        return subscription
    subscription.status = SubscriptionStatus.ACTIVE
    if subscription.next_billing_at <= now:
        subscription.next_billing_at = next_run(
            subscription.cron, subscription.timezone, now
        )
    subscription.updated_at = now
    return subscription


def cancel_now(subscription: Subscription, now: datetime) -> Subscription:
    """Cancel at once; renewals not yet charging are skipped by the worker."""
    if subscription.status == SubscriptionStatus.CANCELED:
        return subscription
    subscription.status = SubscriptionStatus.CANCELED
    subscription.cancel_at = now
    subscription.updated_at = now
    return subscription


def cancel_at_period_end(subscription: Subscription, now: datetime) -> Subscription:
    """Cancel when the current period ends, at the next renewal date, unbilled."""
    _require_not_canceled(subscription, "cancel")
    subscription.cancel_at = subscription.next_billing_at
    subscription.updated_at = now
    return subscription


def skip_next(subscription: Subscription, now: datetime) -> Subscription:
    """Move next_billing_at to the following run, so the next renewal never opens.

    A renewal that is already open (due or in dunning) is not affected.
    """
    _require_not_canceled(subscription, "skip")
    subscription.next_billing_at = next_run(
        subscription.cron, subscription.timezone, subscription.next_billing_at
    )
    subscription.updated_at = now
    return subscription


def ends_before_renewal(subscription: Subscription) -> bool:
    """Return True when a period-end cancellation falls at or before the renewal."""
    return (
        subscription.cancel_at is not None
        and subscription.cancel_at <= subscription.next_billing_at
    )


def _require_not_canceled(subscription: Subscription, verb: str) -> None:
    if subscription.status == SubscriptionStatus.CANCELED:
        raise SubscriptionConflict(
            subscription.id,
            f"cannot {verb} a canceled subscription; create a new one instead",
        )
