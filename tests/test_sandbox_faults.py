"""Injected faults and pending payments, over real HTTP."""

from __future__ import annotations

import pytest
import requests

from sandbox.errors import SetupError
from sandbox.server import SandboxServer
from tests.fixtures.sandbox import StoreClient

STORE = "abc123xyz"


def card(store_client: StoreClient) -> str:
    return store_client.store.customers[42].card_token


def test_error_fault_on_orders_uses_v2_array(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    sandbox.state.inject_fault(
        STORE, "orders", "error", status=400, message="The store is suspended."
    )

    failed = store_client.create_order({"anything": True})
    normal = store_client.create_order({"anything": True})

    assert failed.status_code == 400
    assert failed.json() == [{"status": 400, "message": "The store is suspended."}]
    assert normal.json()[0]["message"] == "The field 'billing_address' is invalid."


@pytest.mark.parametrize(
    ("endpoint", "code", "status"),
    [
        pytest.param("methods", 30000, 422, id="methods-30000"),
        pytest.param("access_tokens", 30100, 500, id="access-tokens-30100"),
        pytest.param("payments", 30105, 422, id="payments-30105"),
    ],
)
def test_error_fault_uses_payments_envelope(
    sandbox: SandboxServer,
    store_client: StoreClient,
    endpoint: str,
    code: int,
    status: int,
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.inject_fault(STORE, endpoint, "error", code=code)
    calls = {
        "methods": lambda: store_client.methods(order_id),
        "access_tokens": lambda: store_client.mint(order_id),
        "payments": lambda: store_client.pay(pat, card(store_client)),
    }

    response = calls[endpoint]()

    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["status"] == status
    assert sandbox.state.ledger() == []


def test_payments_fault_leaves_pat_unused(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.inject_fault(STORE, "payments", "error", code=10000)

    failed = store_client.pay(pat, card(store_client))
    retried = store_client.pay(pat, card(store_client))

    assert failed.status_code == 502
    assert retried.status_code == 201


def test_error_fault_on_transactions_uses_v3(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    sandbox.state.inject_fault(STORE, "transactions", "error", status=503)

    response = requests.get(
        f"{store_client.api}/v3/orders/{order_id}/transactions",
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 503
    assert set(response.json()) == {"status", "title", "type"}


def test_fault_applies_to_count_requests(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    sandbox.state.inject_fault(STORE, "methods", "server_error", status=503, count=2)

    statuses = [store_client.methods(order_id).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert sandbox.state.faults(STORE) == []


def test_faults_of_one_endpoint_apply_in_order(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    sandbox.state.inject_fault(STORE, "methods", "server_error", status=500)
    sandbox.state.inject_fault(STORE, "methods", "server_error", status=502)
    sandbox.state.inject_fault(STORE, "orders", "server_error", status=503)

    statuses = [store_client.methods(order_id).status_code for _ in range(3)]

    assert statuses == [500, 502, 200]
    assert [fault["endpoint"] for fault in sandbox.state.faults(STORE)] == ["orders"]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_has_no_code(
    sandbox: SandboxServer, store_client: StoreClient, status: int
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.inject_fault(STORE, "payments", "server_error", status=status)

    response = store_client.pay(pat, card(store_client))

    assert response.status_code == status
    assert "code" not in response.json()
    assert sandbox.state.ledger() == []


def test_rate_limit_fault_on_api_host(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    sandbox.state.inject_fault(STORE, "access_tokens", "rate_limit", delay=12.5)

    response = store_client.mint(order_id)

    assert response.status_code == 429
    assert response.json()["status"] == 429
    assert response.headers["X-Rate-Limit-Time-Window-Ms"] == "30000"
    assert response.headers["X-Rate-Limit-Time-Reset-Ms"] == "12500"
    assert response.headers["X-Rate-Limit-Requests-Quota"] == "150"
    assert response.headers["X-Rate-Limit-Requests-Left"] == "0"
    assert response.headers["X-Retry-After"] == "13"


def test_rate_limit_fault_on_payments(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.inject_fault(STORE, "payments", "rate_limit")

    limited = store_client.pay(pat, card(store_client))
    retried = store_client.pay(pat, card(store_client))

    assert limited.status_code == 429
    assert limited.headers["X-Rate-Limit-Time-Window-Ms"] == "4000"
    assert limited.headers["X-Rate-Limit-Requests-Quota"] == "50"
    assert limited.headers["X-Rate-Limit-Requests-Left"] == "0"
    assert limited.headers["X-Rate-Limit-Time-Reset-Ms"] == "4000"
    assert retried.status_code == 201


def test_bare_rate_limit_has_no_body(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    sandbox.state.inject_fault(STORE, "orders", "rate_limit_bare")

    response = requests.get(
        f"{store_client.api}/v2/orders", headers=store_client.store.api_headers
    )

    assert response.status_code == 429
    assert response.content == b""
    assert not any(name.lower().startswith("x-rate-limit") for name in response.headers)
    assert "X-Retry-After" not in response.headers


def test_slow_fault_answers_normally(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    sandbox.state.inject_fault(STORE, "methods", "slow", delay=0.2)

    response = store_client.methods(order_id)

    assert response.status_code == 200
    assert response.json()["data"][0]["id"] == "stripe.card"


def test_slow_fault_trips_client_timeout(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    sandbox.state.inject_fault(STORE, "methods", "slow", delay=2)

    with pytest.raises(requests.ReadTimeout):
        requests.get(
            f"{store_client.api}/v3/payments/methods",
            params={"order_id": order_id},
            headers=store_client.store.api_headers,
            timeout=0.2,
        )


def test_drop_after_charge_loses_response(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.inject_fault(STORE, "payments", "drop_after_charge")

    with pytest.raises(requests.ConnectionError):
        store_client.pay(pat, card(store_client))

    assert sandbox.state.charges_for_order(STORE, order_id) == 1
    assert sandbox.state.get_order(STORE, order_id).status_id == 11
    assert store_client.mint(order_id).json()["code"] == 30101


def test_stall_after_charge_times_out_client(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.inject_fault(STORE, "payments", "stall_after_charge", delay=2)
    body = {
        "payment": {
            "instrument": {"type": "stored_card", "token": card(store_client)},
            "payment_method_id": "stripe.card",
        }
    }

    with pytest.raises(requests.ReadTimeout):
        requests.post(
            store_client.payments,
            json=body,
            headers={
                "Authorization": f"PAT {pat}",
                "Accept": "application/vnd.bc.v1+json",
            },
            timeout=0.5,
        )

    assert sandbox.state.charges_for_order(STORE, order_id) == 1
    transactions = requests.get(
        f"{store_client.api}/v3/orders/{order_id}/transactions",
        headers=store_client.store.api_headers,
    )
    assert transactions.json()["data"][0]["event"] == "purchase"


def test_stall_after_charge_answers_late(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.inject_fault(STORE, "payments", "stall_after_charge", delay=0.1)

    response = store_client.pay(pat, card(store_client))

    assert response.status_code == 201
    assert response.json()["data"]["status"] == "success"


def test_drop_after_decline_loses_response(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    declining = sandbox.state.add_instrument(STORE, 42, behavior=30106)
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.inject_fault(STORE, "payments", "drop_after_charge")

    with pytest.raises(requests.ConnectionError):
        store_client.pay(pat, declining)

    assert sandbox.state.ledger() == []
    assert sandbox.state.pats(STORE)[0]["used"] is True


def pending_order(sandbox: SandboxServer, store_client: StoreClient) -> int:
    token = sandbox.state.add_instrument(STORE, 42, behavior="pending")
    order_id = store_client.new_order_id()
    response = store_client.pay(store_client.pat(order_id), token)
    assert response.json()["data"]["status"] == "pending"
    return order_id


def test_settle_pending_success(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = pending_order(sandbox, store_client)

    settled = sandbox.state.settle_pending(STORE)

    order = sandbox.state.get_order(STORE, order_id)
    assert settled == [order_id]
    assert order.status_id == 11
    assert order.payment_status == "captured"
    assert sandbox.state.charges_for_order(STORE, order_id) == 1
    events = [
        (t["event"], t["status"])
        for t in sandbox.state.order_transactions(STORE, order_id)
    ]
    assert events == [("pending", "ok"), ("purchase", "ok")]
    assert sandbox.state.settle_pending(STORE) == []


def test_settle_pending_declined(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = pending_order(sandbox, store_client)

    response = requests.post(
        f"{sandbox.url}/_sandbox/stores/{STORE}/pending/settle",
        json={"order_id": order_id, "outcome": "declined"},
    )

    order = sandbox.state.get_order(STORE, order_id)
    assert response.status_code == 200
    assert response.json() == {"settled_order_ids": [order_id]}
    assert order.status_id == 6
    assert order.payment_status == "declined"
    assert sandbox.state.ledger() == []
    last = sandbox.state.order_transactions(STORE, order_id)[-1]
    assert (last["event"], last["status"]) == ("purchase", "error")


def test_settle_unknown_order_rejected(store_client: StoreClient) -> None:
    state = store_client.server.state

    with pytest.raises(SetupError, match="no pending payment"):
        state.settle_pending(STORE, order_id=9999)
    with pytest.raises(SetupError, match="outcome"):
        state.settle_pending(STORE, outcome="maybe")


def test_admin_injects_and_clears_faults(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    url = f"{sandbox.url}/_sandbox/stores/{STORE}/faults"

    injected = requests.post(
        url, json={"endpoint": "payments", "kind": "error", "code": 30106, "count": 3}
    )
    listed = requests.get(url).json()["data"]
    cleared = requests.delete(url)

    assert injected.status_code == 201
    assert listed == [
        {
            "endpoint": "payments",
            "kind": "error",
            "code": 30106,
            "status": 422,
            "delay": None,
            "remaining": 3,
        }
    ]
    assert cleared.status_code == 204
    assert sandbox.state.faults(STORE) == []


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        pytest.param(
            {"endpoint": "refunds", "kind": "error"}, "endpoint", id="endpoint"
        ),
        pytest.param({"endpoint": "orders", "kind": "flaky"}, "kind", id="kind"),
        pytest.param(
            {"endpoint": "orders", "kind": "drop_after_charge"},
            "payments endpoint only",
            id="drop-on-orders",
        ),
        pytest.param(
            {"endpoint": "orders", "kind": "slow"}, "delay", id="slow-no-delay"
        ),
        pytest.param(
            {"endpoint": "orders", "kind": "error"}, "status", id="error-empty"
        ),
        pytest.param(
            {"endpoint": "orders", "kind": "server_error", "status": 504},
            "500, 502 or 503",
            id="server-error-504",
        ),
        pytest.param(
            {"endpoint": "orders", "kind": "error", "status": 400, "count": 0},
            "count",
            id="zero-count",
        ),
    ],
)
def test_inject_fault_rejects_bad_settings(
    store_client: StoreClient, settings: dict, match: str
) -> None:
    state = store_client.server.state
    endpoint = settings.pop("endpoint")
    kind = settings.pop("kind")

    with pytest.raises(SetupError, match=match):
        state.inject_fault(STORE, endpoint, kind, **settings)
