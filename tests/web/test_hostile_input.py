"""Request values that PostgreSQL cannot store or compare: NUL and huge integers.

Each case runs on SQLite and PostgreSQL. Before these checks PostgreSQL raised
DataError (NUL in text, integer out of range) and the API answered 500.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask.testing import FlaskClient

from models import MAX_INTEGER, AuditEntry
from rebill.runtime import Runtime
from tests.web.conftest import StoreKey, new_subscription
from tests.web.test_api import count_subscriptions, create, error_fields
from tests.web.test_dashboard import csrf_token, failed_cycle, sign_in


def test_instrument_nul_is_rejected(client: FlaskClient, store_a: StoreKey) -> None:
    subscription = create(client, store_a)

    response = client.put(
        f"/api/v1/subscriptions/{subscription['id']}/instrument",
        json={"payment_method_id": "\u0000", "instrument_token": None},
        headers=store_a.headers,
    )

    assert response.status_code == 422, response.json
    assert error_fields(response) == {"payment_method_id"}
    assert "U+0000" in response.json["errors"][0]["message"]


def test_create_with_nul_writes_nothing(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    response = client.post(
        "/api/v1/subscriptions",
        json=new_subscription(reference="gold\u000042"),
        headers=store_a.headers,
    )

    assert response.status_code == 422, response.json
    assert error_fields(response) == {"reference"}
    assert count_subscriptions(runtime) == 0


def test_patch_with_nul_in_template(client: FlaskClient, store_a: StoreKey) -> None:
    subscription = create(client, store_a)
    template = new_subscription()["order_template"]
    template["billing_address"]["city"] = "Den\u0000ver"

    response = client.patch(
        f"/api/v1/subscriptions/{subscription['id']}",
        json={"order_template": template},
        headers=store_a.headers,
    )

    assert response.status_code == 422, response.json
    assert error_fields(response) == {"order_template.billing_address.city"}


def test_list_filter_with_nul_is_rejected(
    client: FlaskClient, store_a: StoreKey
) -> None:
    response = client.get(
        "/api/v1/subscriptions",
        query_string={"reference": "a\x00b"},
        headers=store_a.headers,
    )

    assert response.status_code == 422, response.json
    assert error_fields(response) == {"reference"}


def test_csv_import_with_nul_writes_nothing(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    body = (
        "customer_id,cron,timezone,reference,order_template\n"
        '42,0 9 1 * *,UTC,ref\x00x,"{}"\n'
    )

    response = client.post(
        "/api/v1/subscriptions/import",
        data=body.encode(),
        content_type="text/csv",
        headers=store_a.headers,
    )

    assert response.status_code == 422, response.json
    assert "reference" in error_fields(response)
    assert count_subscriptions(runtime) == 0


def test_customer_id_beyond_integer(client: FlaskClient, store_a: StoreKey) -> None:
    response = client.post(
        "/api/v1/subscriptions",
        json=new_subscription(customer_id=MAX_INTEGER + 1),
        headers=store_a.headers,
    )

    assert response.status_code == 422, response.json
    assert "customer_id" in error_fields(response)


def test_sign_in_with_nul_username_fails(client: FlaskClient, runtime: Runtime) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))

    response = client.post(
        "/login",
        data={"username": "alice\x00", "password": "x" * 12, "csrf_token": token},
    )

    assert response.status_code == 200
    assert "Invalid username or password." in response.get_data(as_text=True)


def test_csv_customer_id_superscript_digit(
    client: FlaskClient, store_a: StoreKey
) -> None:
    body = 'customer_id,cron,timezone,order_template\n\u00b2,0 9 1 * *,UTC,"{}"\n'

    response = client.post(
        "/api/v1/subscriptions/import",
        data=body.encode(),
        content_type="text/csv",
        headers=store_a.headers,
    )

    assert response.status_code == 422, response.json
    assert "customer_id" in error_fields(response)


def test_action_note_with_nul_is_rejected(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    cycle_id = failed_cycle(runtime, store_a)
    sign_in(client, runtime)
    token = csrf_token(client.get(f"/renewals/{cycle_id}").get_data(as_text=True))

    response = client.post(
        f"/renewals/{cycle_id}/skip", data={"csrf_token": token, "note": "a\x00b"}
    )

    assert response.status_code == 400
    with runtime.sessions() as session:
        assert session.scalars(sa.select(AuditEntry)).all() == []
