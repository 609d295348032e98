"""Rate limits of the store API and the payments host, over real HTTP."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import requests

from sandbox.errors import SetupError
from sandbox.limits import FixedWindowQuota, SlidingWindowLimiter
from sandbox.server import SandboxServer
from sandbox.state import SandboxState
from tests.fixtures.sandbox import StoreClient, order_body, payment_headers

STORE = "abc123xyz"


def run_concurrently(calls: list, workers: int) -> list[requests.Response]:
    """Run each call in its own thread, all released at once; return results."""
    barrier = threading.Barrier(workers)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def run(call) -> None:
        barrier.wait()
        response = call()
        with lock:
            results.append(response)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_sliding_window_admits_fifty_per_four_seconds() -> None:
    limiter = SlidingWindowLimiter()

    first = [limiter.admit(100.0) for _ in range(50)]
    rejected = limiter.admit(103.9)
    after_window = limiter.admit(104.0)

    assert all(decision.allowed for decision in first)
    assert first[-1].left == 0
    assert rejected.allowed is False
    assert rejected.reset_ms == 100
    assert after_window.allowed is True


def test_sliding_window_has_no_boundary_burst() -> None:
    limiter = SlidingWindowLimiter()
    for _ in range(25):
        limiter.admit(0.0)
    for _ in range(25):
        limiter.admit(3.5)

    at_four = [limiter.admit(4.0).allowed for _ in range(30)]

    assert at_four.count(True) == 25


def test_fixed_window_quota_resets() -> None:
    quota = FixedWindowQuota(3)

    decisions = [quota.admit(10.0) for _ in range(4)]
    later = quota.admit(40.0)

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.left for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].reset_ms == 30000
    assert later.allowed is True
    assert later.left == 2


def test_payment_burst_gets_exactly_fifty(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    state = sandbox.state
    state.freeze_clock()
    token = store_client.store.customers[42].card_token
    pats = []
    for _ in range(60):
        order = state.create_order(STORE, order_body())
        pats.append(state.mint_pat(STORE, {"order": {"id": order.id}}))
    calls = [lambda pat=pat: store_client.pay(pat, token) for pat in pats]

    responses = run_concurrently(calls, workers=60)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 50, 429: 10}
    assert len(state.ledger(STORE)) == 50
    assert state.rate_limited_counts(STORE) == {"api": 0, "payments": 10}
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.json()["status"] == 429
    assert limited.headers["X-Rate-Limit-Time-Window-Ms"] == "4000"
    assert limited.headers["X-Rate-Limit-Requests-Quota"] == "50"
    assert limited.headers["X-Rate-Limit-Requests-Left"] == "0"
    assert limited.headers["X-Rate-Limit-Time-Reset-Ms"] == "4000"


def test_payment_limit_frees_after_window(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    state = sandbox.state
    state.freeze_clock()
    token = store_client.store.customers[42].card_token
    for _ in range(50):
        state.admit_payment(STORE)
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)

    limited = store_client.pay(pat, token)
    state.advance_clock(4)
    admitted = store_client.pay(pat, token)

    assert limited.status_code == 429
    assert admitted.status_code == 201


def test_payment_limit_is_per_store(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    state = sandbox.state
    state.freeze_clock()
    state.add_store("zzz999", "other-token")
    for _ in range(50):
        state.admit_payment("zzz999")

    order_id = store_client.new_order_id()
    response = store_client.pay(
        store_client.pat(order_id), store_client.store.customers[42].card_token
    )

    assert response.status_code == 201


def test_api_headers_count_down(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    sandbox.state.freeze_clock()
    url = f"{store_client.api}/v2/orders"

    responses = [
        requests.get(url, headers=store_client.store.api_headers) for _ in range(3)
    ]

    lefts = [r.headers["X-Rate-Limit-Requests-Left"] for r in responses]
    assert lefts == ["149", "148", "147"]
    for response in responses:
        assert response.headers["X-Rate-Limit-Requests-Quota"] == "150"
        assert response.headers["X-Rate-Limit-Time-Window-Ms"] == "30000"
        assert response.headers["X-Rate-Limit-Time-Reset-Ms"] == "30000"


def test_api_headers_on_errors_too(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    response = requests.get(
        f"{store_client.api}/v2/orders/9999", headers=store_client.store.api_headers
    )

    assert response.status_code == 404
    assert response.headers["X-Rate-Limit-Requests-Left"] == "149"


def test_api_reset_counts_down_with_clock(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    sandbox.state.freeze_clock()
    url = f"{store_client.api}/v2/orders"
    headers = store_client.store.api_headers

    first = requests.get(url, headers=headers)
    sandbox.state.advance_clock(12.5)
    second = requests.get(url, headers=headers)

    assert first.headers["X-Rate-Limit-Time-Reset-Ms"] == "30000"
    assert second.headers["X-Rate-Limit-Time-Reset-Ms"] == "17500"


def enterprise_store(sandbox: SandboxServer, quota: int, share: float = 0.0) -> dict:
    sandbox.state.freeze_clock()
    sandbox.state.add_store(
        "big1", "big-token", plan="enterprise", api_quota=quota, other_apps_share=share
    )
    return {"X-Auth-Token": "big-token"}


def test_api_429_after_quota(sandbox: SandboxServer) -> None:
    headers = enterprise_store(sandbox, quota=5)
    url = f"{sandbox.api_url}/stores/big1/v2/orders"

    responses = [requests.get(url, headers=headers) for _ in range(6)]
    sandbox.state.advance_clock(30)
    after_reset = requests.get(url, headers=headers)

    assert [r.status_code for r in responses] == [204] * 5 + [429]
    limited = responses[-1]
    assert limited.json() == [{"status": 429, "message": limited.json()[0]["message"]}]
    assert limited.headers["X-Rate-Limit-Requests-Left"] == "0"
    assert limited.headers["X-Rate-Limit-Requests-Quota"] == "5"
    assert limited.headers["X-Rate-Limit-Time-Reset-Ms"] == "30000"
    assert limited.headers["X-Retry-After"] == "30"
    assert after_reset.status_code == 204
    assert after_reset.headers["X-Rate-Limit-Requests-Left"] == "4"
    assert sandbox.state.rate_limited_counts("big1") == {"api": 1, "payments": 0}


def test_api_429_uses_v3_envelope_on_v3(sandbox: SandboxServer) -> None:
    headers = enterprise_store(sandbox, quota=1)
    url = f"{sandbox.api_url}/stores/big1/v3/customers/1/stored-instruments"
    requests.get(url, headers=headers)

    response = requests.get(url, headers=headers)

    assert response.status_code == 429
    assert response.json()["status"] == 429
    assert "title" in response.json()


def test_other_apps_share_reduces_left(sandbox: SandboxServer) -> None:
    headers = enterprise_store(sandbox, quota=10, share=0.3)
    url = f"{sandbox.api_url}/stores/big1/v2/orders"

    responses = [requests.get(url, headers=headers) for _ in range(8)]

    assert responses[0].headers["X-Rate-Limit-Requests-Left"] == "6"
    assert [r.status_code for r in responses].count(204) == 7
    assert responses[-1].status_code == 429


def test_other_apps_share_set_over_http(sandbox: SandboxServer) -> None:
    headers = enterprise_store(sandbox, quota=100)
    admin = f"{sandbox.url}/_sandbox/stores/big1"

    changed = requests.post(f"{admin}/other-apps-share", json={"share": 0.5})
    response = requests.get(f"{sandbox.api_url}/stores/big1/v2/orders", headers=headers)

    assert changed.status_code == 200
    assert response.headers["X-Rate-Limit-Requests-Left"] == "49"


def test_api_quota_holds_under_concurrency(sandbox: SandboxServer) -> None:
    headers = enterprise_store(sandbox, quota=20)
    url = f"{sandbox.api_url}/stores/big1/v2/orders"
    calls = [lambda: requests.get(url, headers=headers) for _ in range(40)]

    responses = run_concurrently(calls, workers=40)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {204: 20, 429: 20}
    assert sandbox.state.rate_limited_counts("big1")["api"] == 20


def test_bare_429_counted(sandbox: SandboxServer, store_client: StoreClient) -> None:
    sandbox.state.inject_fault(STORE, "orders", "rate_limit_bare")

    response = requests.get(
        f"{store_client.api}/v2/orders", headers=store_client.store.api_headers
    )
    counts = requests.get(f"{sandbox.url}/_sandbox/stores/{STORE}/rate-limits").json()

    assert response.status_code == 429
    assert "X-Rate-Limit-Requests-Left" not in response.headers
    assert counts["rate_limited"] == {"api": 1, "payments": 0}


def test_state_calls_do_not_use_quota(
    sandbox: SandboxServer, store_client: StoreClient
) -> None:
    sandbox.state.freeze_clock()
    for _ in range(200):
        sandbox.state.create_order(STORE, order_body())

    response = requests.get(
        f"{store_client.api}/v2/orders/100", headers=store_client.store.api_headers
    )

    assert response.status_code == 200
    assert response.headers["X-Rate-Limit-Requests-Left"] == "149"


def test_latency_setting(sandbox: SandboxServer, store_client: StoreClient) -> None:
    response = requests.post(
        f"{sandbox.url}/_sandbox/settings",
        json={"latency": 0.05, "strict_accept": False},
    )
    order_id = store_client.new_order_id()
    pat = store_client.pat(order_id)
    headers = payment_headers(pat) | {"Accept": "application/json"}

    paid = store_client.pay(
        pat, store_client.store.customers[42].card_token, headers=headers
    )

    assert response.json() == {"latency": 0.05, "strict_accept": False}
    assert sandbox.state.latency == 0.05
    assert paid.status_code == 201


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(
            {"api_quota": None, "plan": "enterprise"}, id="enterprise-no-quota"
        ),
        pytest.param({"api_quota": 0}, id="zero-quota"),
        pytest.param({"other_apps_share": 1.0}, id="share-one"),
        pytest.param({"other_apps_share": -0.1}, id="negative-share"),
    ],
)
def test_add_store_rejects_bad_limits(settings: dict) -> None:
    with pytest.raises(SetupError):
        SandboxState().add_store("shop1", "token", **settings)


def test_negative_latency_rejected() -> None:
    with pytest.raises(SetupError, match="latency"):
        SandboxState(latency=-1)


def test_admin_clock_freeze(sandbox: SandboxServer) -> None:
    url = f"{sandbox.url}/_sandbox/clock"

    frozen = requests.post(url, json={"freeze": True}).json()["now"]
    still = requests.get(url).json()["now"]
    moved = requests.post(url, json={"advance_seconds": 60}).json()["now"]

    assert frozen == still
    assert moved > still
