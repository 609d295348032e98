"""Write merchants' subscriptions and stores to the database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import PLAN_QUOTAS, Store, Subscription, SubscriptionStatus
from rebill.errors import InvalidInput, InvalidInputFile, RecordNotFound
from rebill.subscription_input import (
    SubscriptionSpec,
    parse_subscription,
    parse_subscription_or_errors,
)
from scheduler.schedule import next_run


def store_currency(session: Session, store_hash: str) -> str | None:
    """Return the store's default currency, or None if the store is unknown."""
    return session.scalar(
        sa.select(Store.currency).where(Store.store_hash == store_hash)
    )


def import_records(
    session: Session,
    records: Sequence[tuple[str, object]],
    now: datetime,
    *,
    source: str,
) -> list[Subscription]:
    """Validate labelled records, then add them all; nothing is added if one is bad."""
    specs: list[tuple[str, SubscriptionSpec]] = []
    errors: list[InvalidInput] = []
    for label, record in records:
        store_hash = record.get("store") if isinstance(record, dict) else None
        currency = (
            store_currency(session, store_hash) if isinstance(store_hash, str) else None
        )
        try:
            specs.append(
                (
                    label,
                    parse_subscription(record, label=label, default_currency=currency),
                )
            )
        except InvalidInput as error:
            errors.append(error)
    if errors:
        raise InvalidInputFile(source, errors)
    return add_subscriptions(session, specs, now, source=source)


def add_subscription(
    session: Session, record: Mapping[str, object], now: datetime, *, label: str
) -> Subscription:
    """Validate one record and add it, or raise InvalidInputFile with every error.

    An unknown store is reported alone, because without the store's default
    currency the other fields' errors would only mislead.
    """
    store_hash = record.get("store")
    currency = (
        store_currency(session, store_hash) if isinstance(store_hash, str) else None
    )
    if isinstance(store_hash, str) and currency is None:
        raise InvalidInputFile(label, [unknown_store(label, store_hash)])
    spec, errors = parse_subscription_or_errors(
        record, label=label, default_currency=currency
    )
    if errors:
        raise InvalidInputFile(label, errors)
    assert spec is not None, "a record without errors always yields a spec"
    (added,) = add_subscriptions(session, [(label, spec)], now, source=label)
    return added


def unknown_store(label: str, store_hash: str) -> InvalidInput:
    return InvalidInput(
        label,
        "store",
        f"store {store_hash!r} is not known; add it first with 'rebill stores add'",
    )


def known_store_currency(session: Session, store_hash: str) -> str:
    """Return the store's currency; raise InvalidInput if the store is unknown."""
    currency = store_currency(session, store_hash)
    if currency is None:
        raise unknown_store("store", store_hash)
    return currency


def add_subscriptions(
    session: Session,
    specs: Sequence[tuple[str, SubscriptionSpec]],
    now: datetime,
    *,
    source: str = "input",
) -> list[Subscription]:
    """Add labelled specs; raise InvalidInputFile, adding nothing, if any is invalid."""
    stores = {
        store.store_hash: store
        for store in session.scalars(
            sa.select(Store).where(
                Store.store_hash.in_({s.store_hash for _, s in specs})
            )
        )
    }
    errors = [
        error
        for label, spec in specs
        for error in _conflicts(session, stores, label, spec)
    ]
    if errors:
        raise InvalidInputFile(source, errors)
    added = [_new_subscription(stores[spec.store_hash], spec, now) for _, spec in specs]
    session.add_all(added)
    session.flush()
    return added


def _conflicts(
    session: Session, stores: dict[str, Store], label: str, spec: SubscriptionSpec
) -> list[InvalidInput]:
    store = stores.get(spec.store_hash)
    if store is None:
        return [unknown_store(label, spec.store_hash)]
    if spec.reference is None:
        return []
    taken = session.scalar(
        sa.select(Subscription.id).where(
            Subscription.store_id == store.id, Subscription.reference == spec.reference
        )
    )
    if taken is None:
        return []
    return [
        InvalidInput(
            label,
            "reference",
            f"store {spec.store_hash} already has subscription {taken} with "
            f"reference {spec.reference!r}",
        )
    ]


def _new_subscription(
    store: Store, spec: SubscriptionSpec, now: datetime
) -> Subscription:
    first = spec.first_billing_at or next_run(spec.cron, spec.timezone, now)
    return Subscription(
        store_id=store.id,
        reference=spec.reference,
        customer_id=spec.customer_id,
        cron=spec.cron,
        timezone=spec.timezone,
        currency=spec.currency,
        order_template=spec.order_template.to_json(),
        amount_minor=spec.order_template.total_minor_units(spec.currency),
        next_billing_at=first,
        status=SubscriptionStatus.ACTIVE,
        payment_method_id=spec.payment_method_id,
        instrument_token=spec.instrument_token,
        end_of_dunning_action=spec.end_of_dunning_action,
        created_at=now,
        updated_at=now,
    )


def add_store(
    session: Session,
    *,
    store_hash: str,
    access_token: str,
    api_url: str,
    payments_url: str,
    name: str = "",
    plan: str = "plus",
    api_quota: int | None = None,
    timezone: str = "UTC",
    currency: str = "USD",
) -> Store:
    """Add a store; raise InvalidInput naming the option that is wrong."""
    record = f"store {store_hash}"
    if session.scalar(sa.select(Store.id).where(Store.store_hash == store_hash)):
        raise InvalidInput(
            record, "store_hash", "a store with this hash already exists"
        )
    quota = plan_quota(record, plan, api_quota)
    store = Store(
        store_hash=store_hash,
        name=name,
        access_token=access_token,
        api_url=api_url.rstrip("/"),
        payments_url=payments_url.rstrip("/"),
        plan=plan,
        api_quota=quota,
        timezone=timezone,
        currency=currency,
        retry_policy={},
    )
    session.add(store)
    session.flush()
    return store


def plan_quota(record: str, plan: str, api_quota: int | None) -> int:
    """Return the store API quota per 30 s: `api_quota`, else the plan's quota.

    Raises InvalidInput for an unknown plan, and for an enterprise plan
    without `api_quota`, since enterprise quotas differ from store to store.
    """
    if plan not in (*PLAN_QUOTAS, "enterprise"):
        raise InvalidInput(
            record,
            "plan",
            f"{plan!r} is not a plan: use standard, plus, pro or enterprise",
        )
    quota = api_quota if api_quota is not None else PLAN_QUOTAS.get(plan)
    if quota is None or quota <= 0:
        raise InvalidInput(
            record,
            "api_quota",
            "an enterprise store needs its quota (requests per 30 s)",
        )
    return quota


def update_store(
    session: Session, store_hash: str, changes: Mapping[str, Any]
) -> tuple[Store, list[str]]:
    """Apply `changes` (Store column name -> new value) and return the names changed.

    A new plan without api_quota sets the plan's quota. Raises RecordNotFound
    for an unknown store and InvalidInput for a plan without its quota; nothing
    is changed then. The caller commits.
    """
    store = session.scalar(sa.select(Store).where(Store.store_hash == store_hash))
    if store is None:
        raise RecordNotFound("store", store_hash)
    values = dict(changes)
    if "plan" in values or "api_quota" in values:
        plan = values.get("plan", store.plan)
        quota = values.get("api_quota")
        if quota is None and "plan" not in values:
            quota = store.api_quota
        values["api_quota"] = plan_quota(f"store {store_hash}", plan, quota)
    for name in ("api_url", "payments_url"):
        if name in values:
            values[name] = values[name].rstrip("/")
    changed = [name for name, value in values.items() if getattr(store, name) != value]
    for name in changed:
        setattr(store, name, values[name])
    session.flush()
    return store, sorted(changed)
