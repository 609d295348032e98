"""Fixtures of the web tests: the Flask app on a migrated database and API keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models import utcnow
from rebill.runtime import Runtime
from tests.factories import make_store, order_template
from web.api_keys import create_api_key
from web.app import create_app

SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
OPERATOR_PASSWORD = "correct horse battery"


@dataclass
class QueuedRenewals:
    """An enqueue function that records the cycle ids it was given."""

    cycle_ids: list[int] = field(default_factory=list)

    def __call__(self, cycle_id: int) -> None:
        self.cycle_ids.append(cycle_id)


@dataclass(frozen=True)
class StoreKey:
    store_id: int
    store_hash: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def queued() -> QueuedRenewals:
    return QueuedRenewals()


@pytest.fixture
def web_app(runtime: Runtime, queued: QueuedRenewals) -> Iterator[Flask]:
    app = create_app(runtime, enqueue=queued, clock=lambda: NOW, secret_key=SECRET_KEY)
    app.config["TESTING"] = True
    yield app


@pytest.fixture
def client(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


def add_store_with_key(runtime: Runtime, store_hash: str) -> StoreKey:
    with runtime.sessions() as session:
        store = make_store(session, store_hash)
        _, key = create_api_key(session, store_hash, utcnow())
        session.commit()
        return StoreKey(store.id, store_hash, key)


@pytest.fixture
def store_a(runtime: Runtime) -> StoreKey:
    return add_store_with_key(runtime, "storea")


@pytest.fixture
def store_b(runtime: Runtime) -> StoreKey:
    return add_store_with_key(runtime, "storeb")


def new_subscription(customer_id: int = 42, **fields: Any) -> dict[str, Any]:
    """A valid create-subscription body."""
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "cron": "0 9 1 * *",
        "timezone": "America/Chicago",
        "order_template": order_template(customer_id, price="21.50"),
    }
    body.update(fields)
    return body
