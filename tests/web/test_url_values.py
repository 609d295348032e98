"""Ids and filters read from URLs, checked before they reach the database.

Each case runs on SQLite and PostgreSQL. An id larger than an INTEGER column
must be a 404. PostgreSQL fails such a query ("integer out of range"), and
SQLite one beyond 64 bits, so the server responded 500.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from models import MAX_INTEGER, Store
from rebill.runtime import Runtime
from tests.factories import make_subscription
from tests.web.conftest import NOW, StoreKey
from tests.web.test_api import add_cycle
from tests.web.test_dashboard import csrf_token, failed_cycle, sign_in
from web.ids import RowIdConverter

HUGE_ID = "99999999999999999999"
BEYOND_INTEGER = str(MAX_INTEGER + 1)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/subscriptions/{id}"),
        ("PATCH", "/api/v1/subscriptions/{id}"),
        ("POST", "/api/v1/subscriptions/{id}/pause"),
        ("GET", "/api/v1/subscriptions/{id}/cycles"),
        ("GET", "/api/v1/cycles/{id}"),
        ("GET", "/api/v1/cycles/{id}/attempts"),
    ],
)
@pytest.mark.parametrize("row_id", [HUGE_ID, BEYOND_INTEGER])
def test_api_oversized_id_is_not_found(
    client: FlaskClient, store_a: StoreKey, method: str, path: str, row_id: str
) -> None:
    response = client.open(
        path.format(id=row_id), method=method, json={}, headers=store_a.headers
    )

    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.is_json
    assert "message" in response.json


def test_api_largest_id_is_looked_up(client: FlaskClient, store_a: StoreKey) -> None:
    response = client.get(
        f"/api/v1/subscriptions/{MAX_INTEGER}", headers=store_a.headers
    )

    assert response.status_code == 404
    assert response.json["message"] == "subscription not found"


@pytest.mark.parametrize("row_id", [HUGE_ID, BEYOND_INTEGER])
def test_dashboard_oversized_id_is_not_found(
    client: FlaskClient, runtime: Runtime, row_id: str
) -> None:
    sign_in(client, runtime)

    assert client.get(f"/renewals/{row_id}").status_code == 404
    token = csrf_token(client.get("/stores").get_data(as_text=True))
    for path in (f"/renewals/{row_id}/skip", f"/stores/{row_id}/resume"):
        response = client.post(path, data={"csrf_token": token})
        assert response.status_code == 404, path


@pytest.mark.parametrize(
    "query",
    [
        {"after": HUGE_ID},
        {"code": HUGE_ID},
        {"code": "\u00b2"},
        {"store": "a\x00b"},
        {"outcome": "soft\x00"},
    ],
    ids=["after", "code", "superscript-code", "store-nul", "outcome-nul"],
)
def test_failure_filters_tolerate_bad_values(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey, query: dict
) -> None:
    failed_cycle(runtime, store_a)
    sign_in(client, runtime)

    response = client.get("/failures", query_string=query)

    assert response.status_code == 200


def test_row_id_converter_is_used_everywhere(web_app: Flask) -> None:
    """Every id in a URL goes through the converter that bounds it."""
    for rule in web_app.url_map.iter_rules():
        for name, converter in rule._converters.items():
            if name.endswith("_id"):
                assert isinstance(converter, RowIdConverter), rule.rule


def test_dashboard_existing_renewal_still_found(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    cycle_id = add_cycle(runtime, create_subscription_id(runtime, store_a))
    sign_in(client, runtime)

    assert client.get(f"/renewals/{cycle_id}").status_code == 200


def create_subscription_id(runtime: Runtime, store: StoreKey) -> int:
    with runtime.sessions() as session:
        subscription = make_subscription(
            session, session.get(Store, store.store_id), next_billing_at=NOW
        )
        session.commit()
        return subscription.id
