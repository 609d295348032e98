"""The BigCommerce client against the sandbox and against closed ports."""

from __future__ import annotations

import logging
import socket

import pytest

from rebill.client import (
    BigCommerceClient,
    StoreCredentials,
    payment_authorization,
    retry_after_seconds,
)
from rebill.errors import ApiError, OutcomeUnknown, RateLimited, RequestNotSent
from rebill.redis_server import free_port
from sandbox.server import SandboxServer
from tests.fixtures.sandbox import SeededStore, order_body


def client_for(
    sandbox: SandboxServer, store: SeededStore, *, read_timeout: float = 5.0
) -> BigCommerceClient:
    credentials = StoreCredentials(
        store_hash=store.store_hash,
        access_token=store.access_token,
        api_url=sandbox.api_url,
        payments_url=sandbox.payments_url,
    )
    return BigCommerceClient(
        credentials, connect_timeout=2.0, read_timeout=read_timeout
    )


@pytest.fixture
def client(sandbox: SandboxServer, seeded_store: SeededStore) -> BigCommerceClient:
    return client_for(sandbox, seeded_store)


def test_full_payment_flow(client: BigCommerceClient, sandbox: SandboxServer) -> None:
    order = client.create_order(order_body())
    offered = client.get_payment_methods(order["id"])
    card = next(item for item in offered if item.type == "stored_card")
    pat = client.create_payment_access_token(order["id"])
    result = client.process_payment(order["id"], pat, card)

    assert result.status == "success"
    assert result.transaction_type == "purchase"
    assert client.get_order(order["id"])["status_id"] == 11
    (transaction,) = client.get_transactions(order["id"])
    assert transaction["status"] == "ok"
    assert sandbox.state.charges_for_order("abc123xyz", order["id"]) == 1


def test_payment_methods_parse_cards_and_paypal(client: BigCommerceClient) -> None:
    order = client.create_order(order_body())
    offered = client.get_payment_methods(order["id"])
    kinds = {(item.payment_method_id, item.type) for item in offered}
    assert ("stripe.card", "stored_card") in kinds
    assert ("braintree.paypal", "stored_paypal_account") in kinds
    card = next(item for item in offered if item.type == "stored_card")
    assert card.is_default
    assert card.last_4 == "4242"
    assert card.describe() == "VISA ending 4242"


def test_find_orders_by_external_id(client: BigCommerceClient) -> None:
    order = client.create_order(order_body(external_order_id="rebill-cycle-9"))
    assert [found["id"] for found in client.find_orders("rebill-cycle-9")] == [
        order["id"]
    ]
    assert client.find_orders("rebill-cycle-10") == []


def test_no_transactions_is_empty_list(client: BigCommerceClient) -> None:
    order = client.create_order(order_body())
    assert client.get_transactions(order["id"]) == []


def test_unknown_order_raises_with_code(client: BigCommerceClient) -> None:
    with pytest.raises(ApiError) as raised:
        client.create_payment_access_token(999_999)
    error = raised.value
    assert error.http_status == 404
    assert error.code == 30003
    assert error.order_id == 999_999
    assert error.store_hash == "abc123xyz"
    assert "order 999999" in str(error)


def test_order_not_incomplete_raises_30101(client: BigCommerceClient) -> None:
    order = client.create_order(order_body(status_id=1))
    with pytest.raises(ApiError) as raised:
        client.get_payment_methods(order["id"])
    assert raised.value.code == 30101


def test_v2_error_message_is_kept(client: BigCommerceClient) -> None:
    with pytest.raises(ApiError) as raised:
        client.create_order(order_body(products=[]))
    assert raised.value.http_status == 400
    assert raised.value.code is None
    assert raised.value.detail


def test_wrong_api_token_raises_401(
    sandbox: SandboxServer, seeded_store: SeededStore
) -> None:
    store = SeededStore(seeded_store.store_hash, "wrong-token-value")
    with pytest.raises(ApiError) as raised:
        client_for(sandbox, store).create_order(order_body())
    assert raised.value.http_status == 401
    assert "wrong-token-value" not in str(raised.value)


def test_closed_port_raises_request_not_sent(seeded_store: SeededStore) -> None:
    port = free_port()
    credentials = StoreCredentials(
        seeded_store.store_hash,
        seeded_store.access_token,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{port}/payments-host",
    )
    client = BigCommerceClient(credentials, connect_timeout=1.0, read_timeout=1.0)
    with pytest.raises(RequestNotSent):
        client.create_order(order_body())


def test_silent_server_raises_outcome_unknown(seeded_store: SeededStore) -> None:
    # A server that accepts the connection and never responds.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        credentials = StoreCredentials(
            seeded_store.store_hash,
            seeded_store.access_token,
            f"http://127.0.0.1:{port}",
            f"http://127.0.0.1:{port}/payments-host",
        )
        client = BigCommerceClient(credentials, connect_timeout=1.0, read_timeout=0.3)
        with pytest.raises(OutcomeUnknown) as raised:
            client.create_order(order_body())
    assert "read timeout" in str(raised.value)


def test_dropped_payment_raises_outcome_unknown(
    client: BigCommerceClient, sandbox: SandboxServer
) -> None:
    order = client.create_order(order_body())
    card = client.get_payment_methods(order["id"])[0]
    pat = client.create_payment_access_token(order["id"])
    sandbox.state.inject_fault("abc123xyz", "payments", "drop_after_charge")
    with pytest.raises(OutcomeUnknown):
        client.process_payment(order["id"], pat, card)
    assert sandbox.state.charges_for_order("abc123xyz", order["id"]) == 1


def test_rate_limit_raises_with_wait(
    client: BigCommerceClient, sandbox: SandboxServer
) -> None:
    sandbox.state.inject_fault("abc123xyz", "orders", "rate_limit")
    with pytest.raises(RateLimited) as raised:
        client.create_order(order_body())
    assert raised.value.http_status == 429
    assert raised.value.retry_after is not None


def test_bare_rate_limit_has_no_wait(
    client: BigCommerceClient, sandbox: SandboxServer
) -> None:
    sandbox.state.inject_fault("abc123xyz", "orders", "rate_limit_bare")
    with pytest.raises(RateLimited) as raised:
        client.create_order(order_body())
    assert raised.value.retry_after is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Rate-Limit-Time-Reset-Ms": "1500"}, 1.5),
        ({"X-Retry-After": "3"}, 3.0),
        ({"X-Rate-Limit-Time-Reset-Ms": "1500", "X-Retry-After": "1"}, 1.5),
        ({}, None),
        ({"X-Retry-After": "soon"}, None),
    ],
    ids=["reset-ms", "retry-after", "longer-wins", "none", "garbage"],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_payment_authorization_header() -> None:
    assert payment_authorization("abc.def.ghi") == "PAT abc.def.ghi"


def test_client_logs_no_secrets(
    client: BigCommerceClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        order = client.create_order(order_body())
        card = client.get_payment_methods(order["id"])[0]
        pat = client.create_payment_access_token(order["id"])
        client.process_payment(order["id"], pat, card)
    assert "process payment -> 201" in caplog.text
    assert pat not in caplog.text
    assert card.token not in caplog.text
    assert client.credentials.access_token not in caplog.text
