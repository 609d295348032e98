"""Rows for tests, written straight to the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models import Store, Subscription, SubscriptionStatus


def order_template(customer_id: int = 42, *, price: str = "20.00") -> dict[str, Any]:
    return {
        "billing_address": {
            "first_name": "Ana",
            "last_name": "Example",
            "street_1": "1 Test Street",
            "city": "Austin",
            "state": "Texas",
            "zip": "78701",
            "country": "United States",
            "country_iso2": "US",
            "email": f"customer{customer_id}@example.com",
        },
        "shipping_addresses": [],
        "products": [
            {
                "name": "Monthly box",
                "quantity": 1,
                "price_inc_tax": price,
                "price_ex_tax": price,
            }
        ],
        "shipping_cost_inc_tax": "0",
        "shipping_cost_ex_tax": "0",
    }


def make_store(
    session: Session,
    store_hash: str = "abc123xyz",
    *,
    access_token: str = "test-token-not-secret",
    api_url: str = "http://127.0.0.1:9",
    payments_url: str = "http://127.0.0.1:9/payments-host",
) -> Store:
    store = Store(
        store_hash=store_hash,
        access_token=access_token,
        api_url=api_url,
        payments_url=payments_url,
        retry_policy={},
    )
    session.add(store)
    session.flush()
    return store


def make_subscription(
    session: Session,
    store: Store,
    *,
    next_billing_at: datetime,
    customer_id: int = 42,
    cron: str = "0 9 * * *",
    timezone: str = "UTC",
    amount_minor: int = 2000,
    status: str = SubscriptionStatus.ACTIVE,
    **values: Any,
) -> Subscription:
    subscription = Subscription(
        store_id=store.id,
        customer_id=customer_id,
        cron=cron,
        timezone=timezone,
        currency="USD",
        order_template=order_template(customer_id, price=f"{amount_minor / 100:.2f}"),
        amount_minor=amount_minor,
        next_billing_at=next_billing_at,
        status=status,
        **values,
    )
    session.add(subscription)
    session.flush()
    return subscription
