"""Payment methods, PATs, Process Payment and transactions, over real HTTP."""

from __future__ import annotations

import jwt
import pytest
import requests

from sandbox.server import SandboxServer
from tests.fixtures.sandbox import (
    PAYMENTS_ACCEPT,
    StoreClient,
    order_body,
    payment_headers,
)


def test_methods_list_customer_instruments(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    mine = store_client.store.customers[42]
    others = store_client.store.customers[43]

    response = store_client.methods(order_id)

    assert response.status_code == 200
    methods = {method["id"]: method for method in response.json()["data"]}
    assert set(methods) == {"stripe.card", "braintree.paypal", "braintree.ach"}
    card_tokens = [i["token"] for i in methods["stripe.card"]["stored_instruments"]]
    paypal = methods["braintree.paypal"]["stored_instruments"]
    assert card_tokens == [mine.card_token]
    assert [i["token"] for i in paypal] == [mine.paypal_token]
    assert others.card_token not in card_tokens
    assert paypal[0]["type"] == "stored_paypal_account"
    assert paypal[0]["email"] == "customer42@example.com"
    assert methods["braintree.ach"]["stored_instruments"] == []
    supported = [
        s["instrument_type"] for s in methods["stripe.card"]["supported_instruments"]
    ]
    assert "STORED_CARD" in supported
    paypal_supported = methods["braintree.paypal"]["supported_instruments"]
    assert paypal_supported[0]["instrument_type"] == "STORED_PAYPAL_ACCOUNT"


def test_methods_card_shape(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()

    methods = store_client.methods(order_id).json()["data"]

    card = methods[0]["stored_instruments"][0]
    assert card["type"] == "stored_card"
    assert card["brand"] == "VISA"
    assert card["last_4"] == "4242"
    assert card["expiry_month"] == 12
    assert card["expiry_year"] == 2030
    assert len(card["issuer_identification_number"]) == 6
    assert card["is_default"] is True
    assert len(card["token"]) == 64
    assert card["token"] == card["token"].lower()


def test_methods_for_guest_order_list_nothing(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id(customer_id=0)

    response = store_client.methods(order_id)

    assert response.status_code == 200
    for method in response.json()["data"]:
        assert method["stored_instruments"] == []


def test_methods_list_expired_cards(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    sandbox.state.add_instrument("abc123xyz", 42, expiry_month=9, expiry_year=2020)
    order_id = store_client.new_order_id()

    methods = store_client.methods(order_id).json()["data"]

    years = [card["expiry_year"] for card in methods[0]["stored_instruments"]]
    assert sorted(years) == [2020, 2030]


def test_methods_unknown_order_is_30003(store_client: StoreClient) -> None:
    response = store_client.methods(9999)

    assert response.status_code == 404
    assert response.json()["code"] == 30003


def test_pending_order_rejected_by_methods_and_pat(store_client: StoreClient) -> None:
    body = order_body()
    del body["status_id"]
    order_id = store_client.create_order(body).json()["id"]

    methods = store_client.methods(order_id)
    pat = store_client.mint(order_id)

    for response in (methods, pat):
        assert response.status_code == 409
        assert response.json()["code"] == 30101
        assert response.json()["status"] == 409
        assert response.json()["title"] == "Order is not in a correct status."


def test_pat_is_hs256_jwt_with_claims(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()

    response = store_client.mint(order_id)

    assert response.status_code == 201
    assert response.json()["meta"] == {}
    token = response.json()["data"]["id"]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] == claims["iat"] + 3600
    assert claims["nbf"] == claims["iat"]
    assert claims["iss"] == "payments.bigcommerce.com"
    assert claims["sub"] == "abc123xyz"
    assert len(claims["jti"]) == 36
    assert claims["data"]["order_id"] == str(order_id)
    assert isinstance(claims["data"]["store_id"], str)
    assert claims["data"]["amount"] == 2150
    assert claims["data"]["currency"] == "USD"


def test_pat_records_is_recurring(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    first = store_client.new_order_id()
    second = store_client.new_order_id()

    store_client.mint(first, is_recurring=True)
    store_client.mint(second, is_recurring=False)

    pats = sandbox.state.pats("abc123xyz")
    assert [(p["order_id"], p["is_recurring"]) for p in pats] == [
        (first, True),
        (second, False),
    ]
    assert all("token" not in p and "id" not in p for p in pats)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param({"order": {}}, id="no-id"),
        pytest.param({"order": {"id": "100"}}, id="string-id"),
        pytest.param({"order": {"id": 0}}, id="zero-id"),
        pytest.param({"order": {"id": 100, "is_recurring": "yes"}}, id="bad-flag"),
    ],
)
def test_pat_rejects_missing_order_id(store_client: StoreClient, body: dict) -> None:
    response = requests.post(
        f"{store_client.api}/v3/payments/access_tokens",
        json=body,
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 400
    assert response.json()["code"] == 10001


def test_pat_unknown_order_is_30003(store_client: StoreClient) -> None:
    response = store_client.mint(9999)

    assert response.status_code == 404
    assert response.json()["code"] == 30003


def test_stored_card_payment_succeeds(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    token = store_client.store.customers[42].card_token

    response = store_client.pay(store_client.pat(order_id), token)

    assert response.status_code == 201
    data = response.json()["data"]
    assert data["status"] == "success"
    assert data["transaction_type"] == "purchase"
    assert len(data["id"]) == 36
    order = sandbox.state.get_order("abc123xyz", order_id)
    assert order.status_id == 11
    assert order.payment_status == "captured"
    ledger = sandbox.state.ledger("abc123xyz")
    assert len(ledger) == 1
    assert ledger[0]["order_id"] == order_id
    assert ledger[0]["amount"] == 2150
    assert ledger[0]["currency"] == "USD"
    assert ledger[0]["token_last_4"] == token[-4:]
    assert ledger[0]["payment_method_id"] == "stripe.card"
    assert ledger[0]["transaction_id"] == data["id"]
    assert sandbox.state.charges_for_order("abc123xyz", order_id) == 1


def test_stored_paypal_payment_succeeds(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    token = store_client.store.customers[42].paypal_token

    response = store_client.pay(
        store_client.pat(order_id),
        token,
        kind="stored_paypal_account",
        method_id="braintree.paypal",
    )

    assert response.status_code == 201
    assert response.json()["data"]["status"] == "success"
    assert sandbox.state.ledger()[0]["instrument_type"] == "stored_paypal_account"


def test_payments_guide_flow_end_to_end(store_client: StoreClient) -> None:
    """Create order, read methods, mint a PAT, pay with the listed token."""
    order = store_client.create_order(order_body()).json()
    methods = store_client.methods(order["id"]).json()["data"]
    card_method = next(m for m in methods if m["id"] == "stripe.card")
    token = card_method["stored_instruments"][0]["token"]
    pat = store_client.mint(order["id"], is_recurring=True).json()["data"]["id"]

    response = requests.post(
        store_client.payments,
        json={
            "payment": {
                "instrument": {
                    "type": "stored_card",
                    "token": token,
                    "verification_value": "123",
                },
                "payment_method_id": card_method["id"],
            }
        },
        headers={
            "Accept": "application/vnd.bc.v1+json",
            "Authorization": f"PAT {pat}",
            "Content-Type": "application/json",
        },
    )
    after = requests.get(
        f"{store_client.api}/v2/orders/{order['id']}",
        headers=store_client.store.api_headers,
    ).json()

    assert response.status_code == 201
    assert after["status_id"] == 11
    assert after["status"] == "Awaiting Fulfillment"
    assert after["payment_status"] == "captured"


BAD_AUTHORIZATIONS = [
    pytest.param(lambda pat: {"Authorization": f"Bearer {pat}"}, id="bearer"),
    pytest.param(lambda pat: {"Authorization": f"PTA {pat}"}, id="typo"),
    pytest.param(lambda pat: {"Authorization": f"PAT  {pat}"}, id="double-space"),
    pytest.param(lambda pat: {"Authorization": f"pat {pat}"}, id="lower-case"),
    pytest.param(lambda pat: {"Authorization": pat}, id="no-scheme"),
    pytest.param(lambda pat: {"X-Auth-Token": "sandbox-api-token"}, id="x-auth-token"),
    pytest.param(lambda pat: {}, id="missing"),
]


@pytest.mark.parametrize("make_headers", BAD_AUTHORIZATIONS)
def test_payment_rejects_bad_authorization(
    sandbox: SandboxServer, store_client: StoreClient, make_headers
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    headers = {"Accept": PAYMENTS_ACCEPT, "Content-Type": "application/json"}
    headers.update(make_headers(pat))

    response = store_client.pay(
        pat, store_client.store.customers[42].card_token, headers=headers
    )

    assert response.status_code == 401
    body = response.json()
    assert body["code"] == 10001
    assert body["status"] == 401
    assert {"title", "type"} <= set(body)
    assert sandbox.state.ledger() == []


@pytest.mark.parametrize("accept", ["application/json", "*/*", "text/html"])
def test_payment_strict_accept_is_406(
    sandbox: SandboxServer, store_client: StoreClient, accept: str
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    headers = payment_headers(pat) | {"Accept": accept}

    response = store_client.pay(
        pat, store_client.store.customers[42].card_token, headers=headers
    )

    assert response.status_code == 406
    assert sandbox.state.ledger() == []


def test_payment_lenient_accept_takes_json(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    sandbox.state.strict_accept = False
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    headers = payment_headers(pat) | {"Accept": "application/json"}

    response = store_client.pay(
        pat, store_client.store.customers[42].card_token, headers=headers
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param(
            {"payment": {"payment_method_id": "stripe.card"}}, id="no-instrument"
        ),
        pytest.param(
            {"payment": {"instrument": {"type": "stored_card", "token": "a" * 64}}},
            id="no-method",
        ),
        pytest.param(
            {
                "payment": {
                    "instrument": {"type": "stored_card", "token": "abc"},
                    "payment_method_id": "stripe.card",
                }
            },
            id="short-token",
        ),
        pytest.param({"payment": "card"}, id="payment-not-object"),
    ],
)
def test_payment_rejects_malformed_body(
    sandbox: SandboxServer, store_client: StoreClient, body: dict
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)

    response = requests.post(
        store_client.payments, json=body, headers=payment_headers(pat)
    )

    assert response.status_code == 400
    assert response.json()["code"] == 10001
    assert sandbox.state.pats("abc123xyz")[0]["used"] is False


def test_payment_rejects_unparsable_json(store_client: StoreClient) -> None:
    pat = store_client.pat(store_client.new_order_id())

    response = requests.post(
        store_client.payments, data="{payment:", headers=payment_headers(pat)
    )

    assert response.status_code == 400
    assert response.json()["code"] == 10001


def test_used_pat_is_401(sandbox: SandboxServer, store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    token = store_client.store.customers[42].card_token
    first = store_client.pay(pat, token)
    sandbox.state.update_order("abc123xyz", order_id, {"status_id": 0})

    second = store_client.pay(pat, token)

    assert first.status_code == 201
    assert second.status_code == 401
    assert second.json()["code"] == 10001
    assert sandbox.state.charges_for_order("abc123xyz", order_id) == 1


def test_declined_attempt_uses_pat(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    declining = sandbox.state.add_instrument("abc123xyz", 42, behavior=30106)
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)

    declined = store_client.pay(pat, declining)
    retried = store_client.pay(pat, store_client.store.customers[42].card_token)

    assert declined.status_code == 422
    assert declined.json()["code"] == 30106
    assert retried.status_code == 401
    assert sandbox.state.ledger() == []


def test_expired_pat_is_401(sandbox: SandboxServer, store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.advance_clock(3601)

    response = store_client.pay(pat, store_client.store.customers[42].card_token)

    assert response.status_code == 401
    assert response.json()["code"] == 10001
    assert sandbox.state.ledger() == []


def test_pat_valid_just_before_expiry(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.advance_clock(3590)

    response = store_client.pay(pat, store_client.store.customers[42].card_token)

    assert response.status_code == 201


def test_forged_pat_is_401(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    claims = jwt.decode(store_client.pat(order_id), options={"verify_signature": False})
    forged = jwt.encode(claims, "a-guessed-secret-of-32-bytes-xx!", algorithm="HS256")

    response = store_client.pay(forged, store_client.store.customers[42].card_token)

    assert response.status_code == 401
    assert response.json()["code"] == 10001


def test_pat_of_other_store_is_401(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    sandbox.state.add_store("zzz999", "other-token")
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)

    response = requests.post(
        f"{sandbox.payments_url}/stores/zzz999/payments",
        json={
            "payment": {
                "instrument": {
                    "type": "stored_card",
                    "token": store_client.store.customers[42].card_token,
                },
                "payment_method_id": "stripe.card",
            }
        },
        headers=payment_headers(pat),
    )

    assert response.status_code == 401
    assert response.json()["code"] == 10001


def test_paid_order_rejects_new_pat(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    store_client.pay(
        store_client.pat(order_id), store_client.store.customers[42].card_token
    )

    response = store_client.mint(order_id)

    assert response.status_code == 409
    assert response.json()["code"] == 30101


def test_payment_on_non_incomplete_order_is_30101(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    sandbox.state.update_order("abc123xyz", order_id, {"status_id": 1})

    response = store_client.pay(pat, store_client.store.customers[42].card_token)

    assert response.status_code == 409
    assert response.json()["code"] == 30101
    assert sandbox.state.ledger() == []


def test_amount_mismatch_after_put_is_30004(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    headers = store_client.store.api_headers
    url = f"{store_client.api}/v2/orders/{order_id}"
    line_id = requests.get(f"{url}/products", headers=headers).json()[0]["id"]
    requests.put(
        url, json={"products": [{"id": line_id, "quantity": 2}]}, headers=headers
    )

    response = store_client.pay(pat, store_client.store.customers[42].card_token)

    assert response.status_code == 422
    assert response.json()["code"] == 30004
    assert sandbox.state.ledger() == []


def test_other_customers_token_is_30051(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()

    response = store_client.pay(
        store_client.pat(order_id), store_client.store.customers[43].card_token
    )

    assert response.status_code == 422
    assert response.json()["code"] == 30051
    assert sandbox.state.ledger() == []


def test_removed_instrument_is_30051(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    token = store_client.store.customers[42].card_token
    sandbox.state.remove_instrument("abc123xyz", token)
    order_id = store_client.new_order_id()

    response = store_client.pay(store_client.pat(order_id), token)

    assert response.status_code == 422
    assert response.json()["code"] == 30051


def test_guest_order_payment_is_30051(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id(customer_id=0)

    response = store_client.pay(
        store_client.pat(order_id), store_client.store.customers[42].card_token
    )

    assert response.status_code == 422
    assert response.json()["code"] == 30051


def test_token_with_wrong_method_is_30051(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()

    response = store_client.pay(
        store_client.pat(order_id),
        store_client.store.customers[42].paypal_token,
        kind="stored_paypal_account",
        method_id="stripe.card",
    )

    assert response.status_code == 422
    assert response.json()["code"] == 30051


def test_expired_card_is_30103(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    expired = sandbox.state.add_instrument(
        "abc123xyz", 42, expiry_month=9, expiry_year=2020
    )
    order_id = store_client.new_order_id()

    response = store_client.pay(store_client.pat(order_id), expired)

    assert response.status_code == 422
    assert response.json()["code"] == 30103
    assert sandbox.state.get_order("abc123xyz", order_id).status_id == 0


def test_card_expires_by_sandbox_clock(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    now = sandbox.state.now()
    card = sandbox.state.add_instrument(
        "abc123xyz", 42, expiry_month=now.month, expiry_year=now.year
    )
    sandbox.state.advance_clock(32 * 24 * 3600)
    order_id = store_client.new_order_id()

    response = store_client.pay(store_client.pat(order_id), card)

    assert response.json()["code"] == 30103


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (10000, 502),
        (10001, 422),
        (30000, 422),
        (30001, 422),
        (30002, 422),
        (30102, 422),
        (30104, 422),
        (30105, 422),
        (30106, 422),
        (30107, 422),
    ],
)
def test_instrument_behavior_declines(
    sandbox: SandboxServer, store_client: StoreClient, code: int, status: int
) -> None:
    token = sandbox.state.add_instrument("abc123xyz", 42, behavior=code)
    order_id = store_client.new_order_id()

    response = store_client.pay(store_client.pat(order_id), token)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["status"] == status
    assert sandbox.state.ledger() == []
    assert sandbox.state.get_order("abc123xyz", order_id).status_id == 0


def test_pending_behavior_moves_order_to_7(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    token = sandbox.state.add_instrument("abc123xyz", 42, behavior="pending")
    order_id = store_client.new_order_id()

    response = store_client.pay(store_client.pat(order_id), token)

    assert response.status_code == 201
    assert response.json()["data"]["status"] == "pending"
    order = sandbox.state.get_order("abc123xyz", order_id)
    assert order.status_id == 7
    assert order.payment_status == "pending"
    assert sandbox.state.ledger() == []


def raw_card_body(expiry_year: int) -> dict:
    return {
        "payment": {
            "instrument": {
                "type": "card",
                "number": "4242424242424242",
                "cardholder_name": "Ana Example",
                "expiry_month": 12,
                "expiry_year": expiry_year,
                "verification_value": "321",
            },
            "payment_method_id": "stripe.card",
        }
    }


def test_raw_card_payment_succeeds(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)

    response = requests.post(
        store_client.payments, json=raw_card_body(2031), headers=payment_headers(pat)
    )

    assert response.status_code == 201
    assert sandbox.state.ledger()[0]["token_last_4"] == "4242"
    assert sandbox.state.ledger()[0]["instrument_type"] == "card"


def test_raw_card_two_digit_year_is_10001(store_client: StoreClient) -> None:
    pat = store_client.pat(store_client.new_order_id())

    response = requests.post(
        store_client.payments, json=raw_card_body(31), headers=payment_headers(pat)
    )

    assert response.status_code == 422
    assert response.json()["code"] == 10001


def test_raw_card_expired_is_30103(store_client: StoreClient) -> None:
    pat = store_client.pat(store_client.new_order_id())

    response = requests.post(
        store_client.payments, json=raw_card_body(2020), headers=payment_headers(pat)
    )

    assert response.status_code == 422
    assert response.json()["code"] == 30103


def test_transactions_after_charge(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    token = store_client.store.customers[42].card_token
    store_client.pay(store_client.pat(order_id), token)

    response = requests.get(
        f"{store_client.api}/v3/orders/{order_id}/transactions",
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["meta"]["pagination"]["total"] == 1
    transaction = body["data"][0]
    assert transaction["order_id"] == str(order_id)
    assert transaction["event"] == "purchase"
    assert transaction["status"] == "ok"
    assert transaction["amount"] == 21.5
    assert transaction["currency"] == "USD"
    assert transaction["gateway"] == "stripe"
    assert transaction["payment_method_id"] == "stripe.card"
    assert transaction["payment_instrument_token"] == token
    assert transaction["credit_card"]["card_last4"] == "4242"
    assert transaction["reference_transaction_id"] is None
    assert transaction["avs_result"] is None


def test_transactions_none_is_204_unknown_is_404(store_client: StoreClient) -> None:
    order_id = store_client.new_order_id()
    url = f"{store_client.api}/v3/orders"
    headers = store_client.store.api_headers

    empty = requests.get(f"{url}/{order_id}/transactions", headers=headers)
    unknown = requests.get(f"{url}/9999/transactions", headers=headers)

    assert empty.status_code == 204
    assert empty.content == b""
    assert unknown.status_code == 404
    assert unknown.json()["status"] == 404


def test_customer_stored_instruments_bare_array(store_client: StoreClient) -> None:
    response = requests.get(
        f"{store_client.api}/v3/customers/42/stored-instruments",
        headers=store_client.store.api_headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [item["type"] for item in body] == ["stored_card", "stored_paypal_account"]
    assert body[0]["token"] == store_client.store.customers[42].card_token
    assert body[0]["last_4"] == "4242"
    assert body[1]["email"] == "customer42@example.com"


def test_ledger_counts_charges_per_order(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    customers = store_client.store.customers
    first = store_client.new_order_id()
    second = store_client.new_order_id(43)
    store_client.pay(store_client.pat(first), customers[42].card_token)
    store_client.pay(store_client.pat(second), customers[43].card_token)

    again = store_client.mint(second)

    assert again.status_code == 409
    assert sandbox.state.charges_for_order("abc123xyz", first) == 1
    assert sandbox.state.charges_for_order("abc123xyz", second) == 1
    assert sandbox.state.charges_for_order("abc123xyz", 9999) == 0
    assert [entry["order_id"] for entry in sandbox.state.ledger()] == [first, second]
    assert sandbox.state.ledger("zzz999") == []
