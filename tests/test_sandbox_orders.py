"""V2 orders in the sandbox, over real HTTP."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest
import requests

from sandbox.server import SandboxServer
from tests.fixtures.sandbox import SeededStore, StoreClient, order_body


def test_create_order_returns_v2_object(store_client: StoreClient) -> None:
    response = store_client.create_order(order_body())

    assert response.status_code == 201
    order = response.json()
    assert order["id"] == 100
    assert order["status_id"] == 0
    assert order["status"] == "Incomplete"
    assert order["customer_id"] == 42
    assert order["subtotal_ex_tax"] == "20.0000"
    assert order["total_inc_tax"] == "21.5000"
    assert order["total_tax"] == "1.5000"
    assert order["default_currency_code"] == "USD"
    assert order["external_order_id"] == "sub-7-cycle-1"
    assert order["order_source"] == "external"
    assert order["payment_status"] == ""
    assert parsedate_to_datetime(order["date_created"]).utcoffset() is not None
    assert order["products"]["url"].endswith("/v2/orders/100/products")


def test_create_order_without_status_gets_pending(store_client: StoreClient) -> None:
    body = order_body()
    del body["status_id"]

    order = store_client.create_order(body).json()

    assert order["status_id"] == 1
    assert order["status"] == "Pending"


def test_create_order_totals_from_decimal_inputs(store_client: StoreClient) -> None:
    body = order_body(
        products=[
            {
                "name": "Box",
                "quantity": 3,
                "price_ex_tax": 19.99,
                "price_inc_tax": "21.9891",
            },
            {"name": "Card", "quantity": 1, "price_ex_tax": 5},
        ],
        shipping_cost_ex_tax="4.50",
        discount_amount=2,
    )

    order = store_client.create_order(body).json()

    assert order["subtotal_ex_tax"] == "64.9700"
    assert order["subtotal_inc_tax"] == "70.9673"
    assert order["shipping_cost_inc_tax"] == "4.5000"
    assert order["discount_amount"] == "2.0000"
    assert order["total_ex_tax"] == "67.4700"
    assert order["total_inc_tax"] == "73.4673"


def test_single_price_is_copied_to_other(store_client: StoreClient) -> None:
    body = order_body(products=[{"name": "Box", "quantity": 2, "price_inc_tax": 21.5}])

    order = store_client.create_order(body).json()

    assert order["subtotal_ex_tax"] == "43.0000"
    assert order["subtotal_inc_tax"] == "43.0000"
    assert order["total_tax"] == "0.0000"


def test_products_endpoint_lists_lines(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()

    response = requests.get(
        f"{store_client.api}/v2/orders/{order_id}/products",
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 200
    lines = response.json()
    assert len(lines) == 1
    assert lines[0]["name"] == "Monthly box"
    assert lines[0]["price_inc_tax"] == "21.5000"
    assert isinstance(lines[0]["id"], int)


def without_billing_zip() -> dict[str, object]:
    body = order_body()
    body["billing_address"] = {"first_name": "Ana", "state": "Texas"}
    return body


def with_null_state() -> dict[str, object]:
    body = order_body()
    body["billing_address"] = {"zip": "78701", "state": None}
    return body


INVALID_ORDERS = [
    pytest.param(
        {k: v for k, v in order_body().items() if k != "billing_address"},
        "The field 'billing_address' is invalid.",
        id="missing-billing-address",
    ),
    pytest.param(
        without_billing_zip(),
        "The field 'billing_address' is invalid.",
        id="missing-zip",
    ),
    pytest.param(
        order_body(products=[]), "The field 'products' is invalid.", id="no-products"
    ),
    pytest.param(
        order_body(products=[{"name": "Box", "quantity": 1, "price_ex_tax": "ten"}]),
        "The field 'price_ex_tax' is invalid.",
        id="non-numeric-price",
    ),
    pytest.param(
        order_body(products=[{"name": "Box", "quantity": 1, "price_ex_tax": -1}]),
        "The field 'price_ex_tax' is invalid.",
        id="negative-price",
    ),
    pytest.param(
        order_body(products=[{"name": "Box", "quantity": 1}]),
        "The field 'price_inc_tax' is invalid.",
        id="no-price",
    ),
    pytest.param(
        order_body(shipping_cost_inc_tax="free"),
        "The field 'shipping_cost_inc_tax' is invalid.",
        id="non-numeric-shipping",
    ),
    pytest.param(
        order_body(id=5),
        "The field 'id' cannot be written to. Please remove it from your request "
        "before trying again.",
        id="read-only-id",
    ),
    pytest.param(
        order_body(payment_status="captured"),
        "The field 'payment_status' cannot be written to. Please remove it from "
        "your request before trying again.",
        id="read-only-payment-status",
    ),
    pytest.param(
        order_body(customer_id=777),
        "The field 'customer_id' is invalid.",
        id="unknown-customer",
    ),
    pytest.param(
        with_null_state(),
        "The field 'state' does not allow null values.",
        id="null-state",
    ),
    pytest.param(
        order_body(status_id=99), "The field 'status_id' is invalid.", id="bad-status"
    ),
]


@pytest.mark.parametrize(("body", "message"), INVALID_ORDERS)
def test_create_order_rejects_invalid_body(
    store_client: StoreClient, body: dict[str, object], message: str
) -> None:
    response = store_client.create_order(body)

    assert response.status_code == 400
    assert response.json() == [{"status": 400, "message": message}]


def test_create_order_rejects_invalid_json(store_client: StoreClient) -> None:
    response = requests.post(
        f"{store_client.api}/v2/orders",
        data="{not json",
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 400
    assert response.json()[0]["status"] == 400


def test_guest_order_accepted(store_client: StoreClient) -> None:
    response = store_client.create_order(order_body(customer_id=0))

    assert response.status_code == 201
    assert response.json()["customer_id"] == 0


def test_get_order_and_unknown_order(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    headers = store_client.store.api_headers

    found = requests.get(f"{store_client.api}/v2/orders/{order_id}", headers=headers)
    missing = requests.get(f"{store_client.api}/v2/orders/9999", headers=headers)

    assert found.status_code == 200
    assert found.json()["id"] == order_id
    assert missing.status_code == 404
    assert missing.json() == [
        {"status": 404, "message": "The requested resource was not found."}
    ]


def test_list_orders_filters(store_client: StoreClient) -> None:
    first = store_client.new_order_id(external_order_id="sub-1-cycle-1")
    second = store_client.new_order_id(43, external_order_id="sub-2-cycle-1")
    third = store_client.new_order_id(status_id=1, external_order_id="sub-1-cycle-2")
    url = f"{store_client.api}/v2/orders"
    headers = store_client.store.api_headers

    def ids(**params: object) -> list[int]:
        response = requests.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [order["id"] for order in response.json()]

    assert ids() == [first, second, third]
    assert ids(external_order_id="sub-2-cycle-1") == [second]
    assert ids(customer_id=42) == [first, third]
    assert ids(status_id=0) == [first, second]
    assert ids(min_id=second) == [second, third]
    assert ids(limit=2) == [first, second]
    assert ids(limit=2, page=2) == [third]


def test_list_orders_empty_is_204(store_client: StoreClient) -> None:
    store_client.new_order_id()

    response = requests.get(
        f"{store_client.api}/v2/orders",
        params={"external_order_id": "no-such-cycle"},
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 204
    assert response.content == b""


def test_list_orders_rejects_bad_filter(store_client: StoreClient) -> None:
    response = requests.get(
        f"{store_client.api}/v2/orders",
        params={"page": "first"},
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 400
    assert response.json()[0]["status"] == 400


def test_put_status_changes_status_only(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    headers = store_client.store.api_headers

    response = requests.put(
        f"{store_client.api}/v2/orders/{order_id}",
        json={"status_id": 11},
        headers=headers,
    )
    transactions = requests.get(
        f"{store_client.api}/v3/orders/{order_id}/transactions", headers=headers
    )

    assert response.status_code == 200
    assert response.json()["status_id"] == 11
    assert response.json()["payment_status"] == ""
    assert transactions.status_code == 204


def test_put_product_quantity_changes_totals(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    headers = store_client.store.api_headers
    lines = requests.get(
        f"{store_client.api}/v2/orders/{order_id}/products", headers=headers
    ).json()

    response = requests.put(
        f"{store_client.api}/v2/orders/{order_id}",
        json={"products": [{"id": lines[0]["id"], "quantity": 2}]},
        headers=headers,
    )

    assert response.status_code == 200
    assert response.json()["total_inc_tax"] == "43.0000"
    assert response.json()["items_total"] == 2


def test_put_adds_and_removes_lines(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    headers = store_client.store.api_headers
    url = f"{store_client.api}/v2/orders/{order_id}"
    line_id = requests.get(f"{url}/products", headers=headers).json()[0]["id"]

    response = requests.put(
        url,
        json={
            "products": [
                {"id": line_id, "quantity": 0},
                {
                    "name": "Upgrade",
                    "quantity": 1,
                    "price_ex_tax": 7,
                    "price_inc_tax": 7,
                },
            ]
        },
        headers=headers,
    )

    assert response.status_code == 200
    assert response.json()["total_inc_tax"] == "7.0000"
    names = [
        line["name"] for line in requests.get(f"{url}/products", headers=headers).json()
    ]
    assert names == ["Upgrade"]


def test_invalid_put_changes_nothing(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    headers = store_client.store.api_headers
    url = f"{store_client.api}/v2/orders/{order_id}"

    response = requests.put(
        url, json={"status_id": 5, "discount_amount": "lots"}, headers=headers
    )

    assert response.status_code == 400
    assert requests.get(url, headers=headers).json()["status_id"] == 0


def test_put_unknown_order_is_404(store_client: StoreClient) -> None:
    response = requests.put(
        f"{store_client.api}/v2/orders/9999",
        json={"status_id": 5},
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 404
    assert response.json()[0]["status"] == 404


def test_wrong_auth_token_is_401(store_client: StoreClient) -> None:
    for headers in ({}, {"X-Auth-Token": "wrong"}):
        response = requests.get(f"{store_client.api}/v2/orders", headers=headers)

        assert response.status_code == 401
        body = response.json()
        assert body["status"] == 401
        assert set(body) == {"status", "title", "type"}


def test_unknown_store_is_404(
    sandbox: SandboxServer, seeded_store: SeededStore
) -> None:
    response = requests.get(
        f"{sandbox.api_url}/stores/nosuchstore/v2/orders",
        headers=seeded_store.api_headers,
    )

    assert response.status_code == 404
    assert response.json()["status"] == 404
