"""The sandbox's admin endpoints, server lifecycle and request log."""

from __future__ import annotations

import logging

import pytest
import requests

from sandbox.errors import SetupError
from sandbox.server import SandboxServer
from sandbox.state import SandboxState
from tests.fixtures.sandbox import StoreClient, order_body, payment_headers


def admin_url(sandbox: SandboxServer, path: str) -> str:
    return f"{sandbox.url}/_sandbox{path}"


def seed_over_http(sandbox: SandboxServer) -> str:
    """Seed store shop1 with customer 7 and a card through the admin API."""
    store = requests.post(
        admin_url(sandbox, "/stores"),
        json={"store_hash": "shop1", "access_token": "tok-1", "plan": "pro"},
    )
    assert store.status_code == 201, store.text
    customer = requests.post(
        admin_url(sandbox, "/stores/shop1/customers"), json={"customer_id": 7}
    )
    assert customer.status_code == 201, customer.text
    instrument = requests.post(
        admin_url(sandbox, "/stores/shop1/customers/7/instruments"),
        json={"kind": "stored_card", "last_4": "1111", "is_default": True},
    )
    assert instrument.status_code == 201, instrument.text
    return str(instrument.json()["token"])


def test_admin_seeding_allows_a_charge(sandbox: SandboxServer) -> None:
    token = seed_over_http(sandbox)
    headers = {"X-Auth-Token": "tok-1"}
    api = f"{sandbox.api_url}/stores/shop1"
    order_id = requests.post(
        f"{api}/v2/orders", json=order_body(7), headers=headers
    ).json()["id"]
    pat = requests.post(
        f"{api}/v3/payments/access_tokens",
        json={"order": {"id": order_id, "is_recurring": True}},
        headers=headers,
    ).json()["data"]["id"]

    paid = requests.post(
        f"{sandbox.payments_url}/stores/shop1/payments",
        json={
            "payment": {
                "instrument": {"type": "stored_card", "token": token},
                "payment_method_id": "stripe.card",
            }
        },
        headers=payment_headers(pat),
    )
    ledger = requests.get(admin_url(sandbox, "/stores/shop1/ledger")).json()["data"]
    pats = requests.get(admin_url(sandbox, "/stores/shop1/pats")).json()["data"]
    orders = requests.get(admin_url(sandbox, "/stores/shop1/orders")).json()["data"]
    charges = requests.get(
        admin_url(sandbox, f"/stores/shop1/orders/{order_id}/charges")
    ).json()

    assert paid.status_code == 201
    assert len(token) == 64
    assert [entry["order_id"] for entry in ledger] == [order_id]
    assert ledger[0]["amount"] == 2150
    assert pats == [
        {
            "order_id": order_id,
            "is_recurring": True,
            "amount": 2150,
            "currency": "USD",
            "issued_at": pats[0]["issued_at"],
            "expires_at": pats[0]["expires_at"],
            "used": True,
        }
    ]
    assert orders[0]["status_id"] == 11
    assert charges == {"order_id": order_id, "charges": 1}
    assert requests.get(admin_url(sandbox, "/ledger")).json()["data"] == ledger


def test_admin_removes_instrument(sandbox: SandboxServer) -> None:
    token = seed_over_http(sandbox)

    removed = requests.delete(admin_url(sandbox, f"/stores/shop1/instruments/{token}"))
    again = requests.delete(admin_url(sandbox, f"/stores/shop1/instruments/{token}"))

    assert removed.status_code == 204
    assert again.status_code == 404
    assert token not in again.json()["error"]


def test_admin_clock_moves_forward(sandbox: SandboxServer) -> None:
    before = sandbox.state.now()

    response = requests.post(
        admin_url(sandbox, "/clock"), json={"advance_seconds": 7200}
    )
    backwards = requests.post(
        admin_url(sandbox, "/clock"), json={"advance_seconds": -1}
    )

    assert response.status_code == 200
    assert (sandbox.state.now() - before).total_seconds() >= 7200
    assert backwards.status_code == 400


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param("/stores", {"store_hash": "shop1"}, 400, id="missing-token"),
        pytest.param(
            "/stores",
            {"store_hash": "Bad Hash!", "access_token": "t"},
            400,
            id="bad-hash",
        ),
        pytest.param(
            "/stores",
            {"store_hash": "s2", "access_token": "t", "plan": "gold"},
            400,
            id="bad-plan",
        ),
        pytest.param("/stores/nope/customers", {"customer_id": 1}, 404, id="no-store"),
        pytest.param(
            "/stores/shop1/customers/99/instruments", {}, 404, id="no-customer"
        ),
        pytest.param(
            "/stores/shop1/customers/7/instruments",
            {"behavior": 12345},
            400,
            id="undocumented-code",
        ),
        pytest.param(
            "/stores/shop1/customers/7/instruments",
            {"colour": "red"},
            400,
            id="unknown-option",
        ),
        pytest.param(
            "/stores",
            {"store_hash": "shop1", "access_token": "again"},
            409,
            id="duplicate-store",
        ),
    ],
)
def test_admin_rejects_bad_input(
    sandbox: SandboxServer, path: str, body: dict, status: int
) -> None:
    seed_over_http(sandbox)

    response = requests.post(admin_url(sandbox, path), json=body)

    assert response.status_code == status
    assert response.json()["error"]


def test_state_rejects_bad_instrument() -> None:
    state = SandboxState()
    state.add_store("shop1", "tok")
    state.add_customer("shop1", 1)

    with pytest.raises(SetupError, match="kind"):
        state.add_instrument("shop1", 1, kind="gift_card")
    with pytest.raises(SetupError, match="expiry_month"):
        state.add_instrument("shop1", 1, expiry_month=13)
    with pytest.raises(SetupError, match="charges stored_card"):
        state.add_instrument(
            "shop1", 1, kind="stored_paypal_account", payment_method_id="stripe.card"
        )


def test_custom_method_id_listed(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    token = sandbox.state.add_instrument(
        "abc123xyz", 42, payment_method_id="adyenv2.scheme"
    )
    order_id = store_client.new_order_id()

    methods = {m["id"]: m for m in store_client.methods(order_id).json()["data"]}
    paid = store_client.pay(
        store_client.pat(order_id), token, method_id="adyenv2.scheme"
    )

    assert [i["token"] for i in methods["adyenv2.scheme"]["stored_instruments"]] == [
        token
    ]
    assert paid.status_code == 201


def test_default_flag_moves_to_new_card(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    newer = sandbox.state.add_instrument(
        "abc123xyz", 42, last_4="0005", is_default=True
    )
    order_id = store_client.new_order_id()

    cards = store_client.methods(order_id).json()["data"][0]["stored_instruments"]

    defaults = {card["token"]: card["is_default"] for card in cards}
    assert defaults[newer] is True
    assert defaults[store_client.store.customers[42].card_token] is False


def test_request_log_has_no_secrets(
    store_client: StoreClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sandbox")
    token = store_client.store.customers[42].card_token
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    store_client.pay(pat, token)
    requests.delete(
        f"{store_client.server.url}/_sandbox/stores/abc123xyz/instruments/{token}"
    )

    text = caplog.text
    assert "POST /payments-host/stores/abc123xyz/payments -> 201" in text
    assert f"DELETE /_sandbox/stores/abc123xyz/instruments/...{token[-4:]}" in text
    assert token not in text
    assert pat not in text
    assert "sandbox-api-token" not in text


def test_server_start_stop_releases_port() -> None:
    server = SandboxServer().start()
    url = server.url

    assert server.payments_url == f"{url}/payments-host"
    assert server.api_url == url
    assert requests.get(f"{url}/_sandbox/clock").status_code == 200
    server.stop()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_sandbox/clock", timeout=2)
