"""The sandbox counts every request per store and host, 429s included."""

from __future__ import annotations

import requests

from sandbox.server import SandboxServer
from tests.fixtures.sandbox import StoreClient


def test_store_api_requests_counted_with_429s(sandbox: SandboxServer) -> None:
    sandbox.state.freeze_clock()
    sandbox.state.add_store("big1", "big-token", plan="enterprise", api_quota=2)
    url = f"{sandbox.api_url}/stores/big1/v2/orders"

    statuses = [
        requests.get(url, headers={"X-Auth-Token": "big-token"}).status_code
        for _ in range(3)
    ]

    assert statuses == [204, 204, 429]
    assert sandbox.state.request_counts("big1") == {"api": 3, "payments": 0}


def test_payments_counted_per_store(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    token = store_client.store.customers[42].card_token
    paid = store_client.pay(store_client.pat(order_id), token)

    counts = requests.get(
        f"{sandbox.url}/_sandbox/stores/{store_client.store.store_hash}/rate-limits"
    ).json()

    assert paid.status_code == 201
    assert counts["requests"] == {"api": 2, "payments": 1}
    assert counts["rate_limited"] == {"api": 0, "payments": 0}


def test_unauthenticated_request_not_counted(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    response = requests.get(
        f"{store_client.api}/v2/orders", headers={"X-Auth-Token": "wrong"}
    )

    assert response.status_code == 401
    assert sandbox.state.request_counts(store_client.store.store_hash)["api"] == 0
