"""Subscription, renewal and attempt endpoints of the merchant API."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Response, jsonify, request, url_for

from models import (
    MAX_INTEGER,
    BillingCycle,
    ChargeAttempt,
    Subscription,
    SubscriptionStatus,
)
from rebill import subscription_changes as changes
from rebill.errors import InvalidInput
from rebill.subscription_input import parse_subscription_or_errors
from rebill.subscriptions import add_subscriptions
from scheduler.schedule import upcoming_runs
from web.api import api
from web.api.auth import actor, current_key, int_arg, json_body, text_arg
from web.api.errors import ApiProblem, invalid
from web.api.serialize import (
    amount,
    attempt_json,
    cycle_json,
    iso,
    subscription_json,
)
from web.app import db, now
from web.audit import record_audit

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
MAX_PREVIEW_COUNT = 24
STATUSES = tuple(status.value for status in SubscriptionStatus)
NOT_FOUND = "subscription not found"


@api.get("/store")
def get_store() -> Response:
    store = current_key().store
    return jsonify(
        store=store.store_hash,
        name=store.name,
        currency=store.currency,
        timezone=store.timezone,
        billing_paused=store.billing_paused,
        billing_paused_reason=store.billing_paused_reason,
    )


@api.get("/subscriptions")
def list_subscriptions() -> Response:
    limit = int_arg("limit", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    after = int_arg("after", 0, minimum=0, maximum=MAX_INTEGER)
    query = (
        sa.select(Subscription)
        .where(Subscription.store_id == current_key().store_id, Subscription.id > after)
        .order_by(Subscription.id)
        .limit(limit)
    )
    status = request.args.get("status")
    if status is not None:
        if status not in STATUSES:
            raise _invalid_query("status", status, STATUSES)
        query = query.where(Subscription.status == status)
    reference = text_arg("reference")
    if reference is not None:
        query = query.where(Subscription.reference == reference)
    found = list(db().scalars(query))
    return _page([subscription_json(s) for s in found], found, limit)


@api.post("/subscriptions")
def create_subscription() -> tuple[Response, int, dict[str, str]]:
    record = json_body()
    store = current_key().store
    if "store" in record and record["store"] != store.store_hash:
        raise invalid(
            [
                InvalidInput(
                    "request body", "store", "must be omitted or this key's store"
                )
            ]
        )
    record["store"] = store.store_hash
    spec, errors = parse_subscription_or_errors(
        record, label="request body", default_currency=store.currency
    )
    if errors:
        raise invalid(errors)
    assert spec is not None
    session = db()
    (subscription,) = add_subscriptions(
        session, [("request body", spec)], now(), source="request body"
    )
    _audit("subscription.create", subscription)
    session.commit()
    logger.info(
        "store %s subscription %d: created through %s",
        store.store_hash,
        subscription.id,
        actor(),
    )
    location = url_for("api.get_subscription", subscription_id=subscription.id)
    return jsonify(subscription_json(subscription)), 201, {"Location": location}


@api.get("/subscriptions/<id:subscription_id>")
def get_subscription(subscription_id: int) -> Response:
    return jsonify(subscription_json(_own_subscription(subscription_id)))


@api.patch("/subscriptions/<id:subscription_id>")
def update_subscription(subscription_id: int) -> Response:
    subscription = _own_subscription(subscription_id)
    body = json_body()
    changes.update_subscription(subscription, body, now())
    return _commit(subscription, "subscription.update", ", ".join(sorted(body)))


@api.post("/subscriptions/<id:subscription_id>/pause")
def pause_subscription(subscription_id: int) -> Response:
    subscription = changes.pause(_own_subscription(subscription_id), now())
    return _commit(subscription, "subscription.pause")


@api.post("/subscriptions/<id:subscription_id>/resume")
def resume_subscription(subscription_id: int) -> Response:
    subscription = changes.resume(_own_subscription(subscription_id), now())
    return _commit(subscription, "subscription.resume")


@api.post("/subscriptions/<id:subscription_id>/cancel")
def cancel_subscription(subscription_id: int) -> Response:
    subscription = _own_subscription(subscription_id)
    when = request.args.get("at", "now")
    if when == "now":
        changes.cancel_now(subscription, now())
    elif when == "period_end":
        changes.cancel_at_period_end(subscription, now())
    else:
        raise _invalid_query("at", when, ("now", "period_end"))
    return _commit(subscription, "subscription.cancel", f"at {when}")


@api.post("/subscriptions/<id:subscription_id>/skip-next")
def skip_next_renewal(subscription_id: int) -> Response:
    subscription = changes.skip_next(_own_subscription(subscription_id), now())
    return _commit(subscription, "subscription.skip_next")


@api.put("/subscriptions/<id:subscription_id>/instrument")
def set_instrument(subscription_id: int) -> Response:
    subscription = _own_subscription(subscription_id)
    body = json_body()
    missing = [
        InvalidInput("request body", name, "missing: give a value, or null to clear")
        for name in sorted(changes.INSTRUMENT_FIELDS)
        if name not in body
    ]
    if missing:
        raise invalid(missing)
    changes.update_subscription(
        subscription, body, now(), allowed=changes.INSTRUMENT_FIELDS
    )
    return _commit(subscription, "subscription.instrument")


@api.get("/subscriptions/<id:subscription_id>/preview")
def preview_renewals(subscription_id: int) -> Response:
    subscription = _own_subscription(subscription_id)
    count = int_arg("count", 3, minimum=1, maximum=MAX_PREVIEW_COUNT)
    return jsonify(data=_preview(subscription, count))


def _preview(subscription: Subscription, count: int) -> list[dict[str, Any]]:
    """Return the next `count` renewals the scheduler will open, nothing once canceled.

    The first is next_billing_at itself, which a first_billing_at or a resume
    may have put off the schedule. A period-end cancellation ends the list.
    """
    if subscription.status == SubscriptionStatus.CANCELED:
        return []
    first = subscription.next_billing_at
    dates = [
        first,
        *upcoming_runs(subscription.cron, subscription.timezone, first, count - 1),
    ]
    if subscription.cancel_at is not None:
        dates = [moment for moment in dates if moment < subscription.cancel_at]
    price = amount(subscription.amount_minor, subscription.currency)
    return [
        {
            "billing_at": iso(moment),
            "currency": subscription.currency,
            "amount": price,
            "amount_minor": subscription.amount_minor,
        }
        for moment in dates
    ]


@api.get("/subscriptions/<id:subscription_id>/cycles")
def list_cycles(subscription_id: int) -> Response:
    subscription = _own_subscription(subscription_id)
    limit = int_arg("limit", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    after = int_arg("after", 0, minimum=0, maximum=MAX_INTEGER)
    found = list(
        db().scalars(
            sa.select(BillingCycle)
            .where(
                BillingCycle.subscription_id == subscription.id,
                BillingCycle.id > after,
            )
            .order_by(BillingCycle.id)
            .limit(limit)
        )
    )
    return _page([cycle_json(c) for c in found], found, limit)


@api.get("/cycles/<id:cycle_id>")
def get_cycle(cycle_id: int) -> Response:
    cycle = _own_cycle(cycle_id)
    return jsonify({**cycle_json(cycle), "attempts": _attempts(cycle)})


@api.get("/cycles/<id:cycle_id>/attempts")
def list_attempts(cycle_id: int) -> Response:
    return jsonify(data=_attempts(_own_cycle(cycle_id)))


def _attempts(cycle: BillingCycle) -> list[dict[str, Any]]:
    attempts = db().scalars(
        sa.select(ChargeAttempt)
        .where(ChargeAttempt.cycle_id == cycle.id)
        .order_by(ChargeAttempt.number)
    )
    return [attempt_json(attempt) for attempt in attempts]


def _own_subscription(subscription_id: int) -> Subscription:
    subscription = db().scalar(
        sa.select(Subscription).where(
            Subscription.id == subscription_id,
            Subscription.store_id == current_key().store_id,
        )
    )
    if subscription is None:
        raise ApiProblem(404, NOT_FOUND)
    return subscription


def _own_cycle(cycle_id: int) -> BillingCycle:
    cycle = db().scalar(
        sa.select(BillingCycle).where(
            BillingCycle.id == cycle_id,
            BillingCycle.store_id == current_key().store_id,
        )
    )
    if cycle is None:
        raise ApiProblem(404, "renewal not found")
    return cycle


def _commit(subscription: Subscription, action: str, detail: str = "") -> Response:
    _audit(action, subscription, detail)
    db().commit()
    logger.info(
        "store %s subscription %d: %s through %s",
        subscription.store.store_hash,
        subscription.id,
        action,
        actor(),
    )
    return jsonify(subscription_json(subscription))


def _audit(action: str, subscription: Subscription, detail: str = "") -> None:
    db().flush()
    record_audit(
        db(),
        now(),
        actor=actor(),
        action=action,
        store_id=subscription.store_id,
        subscription_id=subscription.id,
        detail=detail,
    )


def _page(items: list[dict[str, Any]], rows: list[Any], limit: int) -> Response:
    next_after = rows[-1].id if len(rows) == limit else None
    return jsonify(data=items, next_after=next_after)


def _invalid_query(name: str, value: str, allowed: tuple[str, ...]) -> ApiProblem:
    return ApiProblem(
        422,
        "invalid query parameter",
        [
            InvalidInput(
                "query",
                name,
                f"invalid value {value!r}: use one of " + ", ".join(allowed),
            )
        ],
    )
