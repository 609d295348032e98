"""The sandbox's admin API describes itself and explains its errors in HTTP terms."""

from __future__ import annotations

import re

import pytest
import requests

from sandbox.app import create_app
from sandbox.errors import SetupError
from sandbox.server import SandboxServer
from sandbox.state import SandboxState
from tests.fixtures.sandbox import StoreClient
from tests.test_sandbox_admin import admin_url, seed_over_http

# Python spellings of values and method names, which mean nothing to an HTTP client.
PYTHON_WORDS = re.compile(r"\b(None|True|False|add_store|add_customer|bool)\b")


def documented_routes() -> set[tuple[str, str]]:
    index = create_app(SandboxState()).test_client().get("/_sandbox/").json
    return {(entry["method"], entry["path"]) for entry in index["endpoints"]}


def test_index_lists_every_admin_route() -> None:
    app = create_app(SandboxState())
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/_sandbox/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((method, path))

    assert documented_routes() == served


def test_index_describes_bodies(sandbox: SandboxServer) -> None:
    response = requests.get(admin_url(sandbox, "/"))

    assert response.status_code == 200
    entries = {
        (entry["method"], entry["path"]): entry
        for entry in response.json()["endpoints"]
    }
    add_store = entries[("POST", "/_sandbox/stores")]
    assert add_store["description"]
    assert set(add_store["body"]) == {
        "store_hash",
        "access_token",
        "plan",
        "currency",
        "api_quota",
        "other_apps_share",
    }
    instrument = entries[
        ("POST", "/_sandbox/stores/{store_hash}/customers/{customer_id}/instruments")
    ]
    assert "behavior" in instrument["body"]
    assert entries[("GET", "/_sandbox/ledger")]["body"] is None
    assert response.json()["store_api"].endswith("/stores/{store_hash}")
    assert response.json()["payments_host"].endswith(
        "/payments-host/stores/{store_hash}"
    )


def test_unknown_admin_path_points_to_index(sandbox: SandboxServer) -> None:
    response = requests.get(admin_url(sandbox, "/nothing-here"))

    assert response.status_code == 404
    assert "GET /_sandbox/" in response.json()["error"]


def test_unknown_store_names_http_path(sandbox: SandboxServer) -> None:
    response = requests.post(
        admin_url(sandbox, "/stores/nostore/customers"), json={"customer_id": 1}
    )

    assert response.status_code == 404
    message = response.json()["error"]
    assert "POST /_sandbox/stores" in message
    assert not PYTHON_WORDS.search(message), message


def test_unknown_customer_names_http_path(sandbox: SandboxServer) -> None:
    seed_over_http(sandbox)

    response = requests.post(
        admin_url(sandbox, "/stores/shop1/customers/99/instruments"), json={}
    )

    assert response.status_code == 404
    message = response.json()["error"]
    assert "POST /_sandbox/stores/shop1/customers" in message
    assert not PYTHON_WORDS.search(message), message


@pytest.mark.parametrize(
    ("path", "body", "value"),
    [
        ("/stores/shop1/customers/7/instruments", {"behavior": "soon"}, '"soon"'),
        ("/stores/shop1/customers/7/instruments", {"behavior": True}, "true"),
        ("/stores/shop1/customers/7/instruments", {"last_4": 4242}, "4242"),
        ("/stores/shop1/customers", {"customer_id": None}, "null"),
        ("/stores/shop1/customers", {"customer_id": "7"}, '"7"'),
        ("/clock", {"freeze": "yes"}, '"yes"'),
        ("/settings", {"strict_accept": 1}, "1"),
        ("/stores/shop1/faults", {"endpoint": "refunds", "kind": "slow"}, '"refunds"'),
        ("/stores", {"store_hash": "Bad!", "access_token": "t"}, '"Bad!"'),
    ],
    ids=[
        "behavior-word",
        "behavior-boolean",
        "last-4-number",
        "customer-null",
        "customer-string",
        "freeze",
        "strict-accept",
        "fault-endpoint",
        "store-hash",
    ],
)
def test_errors_quote_json_values(
    sandbox: SandboxServer, path: str, body: dict, value: str
) -> None:
    seed_over_http(sandbox)

    response = requests.post(admin_url(sandbox, path), json=body)

    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert value in message
    assert not PYTHON_WORDS.search(message), message


def test_behavior_word_says_it_needs_a_number(sandbox: SandboxServer) -> None:
    seed_over_http(sandbox)

    response = requests.post(
        admin_url(sandbox, "/stores/shop1/customers/7/instruments"),
        json={"behavior": "declined"},
    )

    assert response.status_code == 400
    message = response.json()["error"]
    assert "a number" in message
    assert "30106" in message


def test_behavior_code_as_numeric_string(store_client: StoreClient) -> None:
    response = requests.post(
        admin_url(store_client.server, "/stores/abc123xyz/customers/42/instruments"),
        json={"behavior": "30106"},
    )
    assert response.status_code == 201, response.text
    order_id = store_client.new_order_id()

    paid = store_client.pay(store_client.pat(order_id), response.json()["token"])

    assert paid.status_code == 422, paid.text
    assert paid.json()["code"] == 30106


def test_undocumented_numeric_code_is_rejected() -> None:
    state = SandboxState()
    state.add_store("shop1", "tok")
    state.add_customer("shop1", 1)

    with pytest.raises(SetupError, match="documented error code"):
        state.add_instrument("shop1", 1, behavior="12345")
