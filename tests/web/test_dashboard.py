from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from models import AuditEntry, BillingCycle, CycleState, Store
from rebill.runtime import Runtime
from tests.factories import make_subscription
from tests.web.conftest import NOW, OPERATOR_PASSWORD, QueuedRenewals, StoreKey
from tests.web.test_api import add_cycle
from web.operators import add_operator


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    if match is None:
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, "page has no CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, runtime: Runtime, username: str = "alice") -> None:
    with runtime.sessions() as session:
        add_operator(session, username, OPERATOR_PASSWORD, NOW)
        session.commit()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login",
        data={"username": username, "password": OPERATOR_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def failed_cycle(runtime: Runtime, store: StoreKey, **values: object) -> int:
    with runtime.sessions() as session:
        store_row = session.get(Store, store.store_id)
        subscription = make_subscription(
            session, store_row, next_billing_at=NOW + timedelta(days=30)
        )
        session.commit()
        subscription_id = subscription.id
    return add_cycle(
        runtime,
        subscription_id,
        state=CycleState.FAILED,
        last_outcome="soft_decline",
        last_error_code=30106,
        last_error_message="insufficient funds",
        attempt_count=1,
        **values,
    )


def test_pages_require_sign_in(client: FlaskClient) -> None:
    for path in ("/", "/failures", "/stores", "/audit", "/renewals/1"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"]


def test_wrong_password_is_rejected(client: FlaskClient, runtime: Runtime) -> None:
    with runtime.sessions() as session:
        add_operator(session, "alice", OPERATOR_PASSWORD, NOW)
        session.commit()
    token = csrf_token(client.get("/login").get_data(as_text=True))

    response = client.post(
        "/login", data={"username": "alice", "password": "wrong", "csrf_token": token}
    )

    assert response.status_code == 200
    assert "Invalid username or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_fails(client: FlaskClient, runtime: Runtime) -> None:
    with runtime.sessions() as session:
        add_operator(session, "alice", OPERATOR_PASSWORD, NOW)
        session.commit()

    response = client.post(
        "/login", data={"username": "alice", "password": OPERATOR_PASSWORD}
    )

    assert response.status_code == 400


def test_pages_render_after_sign_in(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    cycle_id = failed_cycle(runtime, store_a)
    sign_in(client, runtime)

    overview = client.get("/").get_data(as_text=True)
    failures = client.get("/failures?code=30106").get_data(as_text=True)
    filtered_out = client.get("/failures?code=30103").get_data(as_text=True)
    timeline = client.get(f"/renewals/{cycle_id}").get_data(as_text=True)
    stores = client.get("/stores").get_data(as_text=True)

    assert "Renewals today" in overview
    assert "30106" in overview
    assert f"#{cycle_id}" in failures
    assert f"#{cycle_id}" not in filtered_out
    assert "Attempt 1: soft_decline" in timeline
    assert "ending 4242" in timeline
    assert store_a.store_hash in stores
    assert client.get("/renewals/999999").status_code == 404


def test_action_without_csrf_is_rejected(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    cycle_id = failed_cycle(runtime, store_a)
    sign_in(client, runtime)

    response = client.post(f"/renewals/{cycle_id}/skip", data={})

    assert response.status_code == 400
    with runtime.sessions() as session:
        assert session.get(BillingCycle, cycle_id).state == CycleState.FAILED


def test_retry_now_queues_and_audits(
    client: FlaskClient,
    runtime: Runtime,
    store_a: StoreKey,
    queued: QueuedRenewals,
) -> None:
    cycle_id = failed_cycle(runtime, store_a)
    sign_in(client, runtime)
    token = csrf_token(client.get(f"/renewals/{cycle_id}").get_data(as_text=True))

    response = client.post(
        f"/renewals/{cycle_id}/retry",
        data={"csrf_token": token, "note": "customer paid"},
    )

    assert response.status_code == 302
    assert queued.cycle_ids == [cycle_id]
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        assert cycle.state == CycleState.RETRY_SCHEDULED
        assert cycle.next_attempt_at == NOW
        entry = session.scalars(sa.select(AuditEntry)).one()
    assert entry.actor == "operator alice"
    assert entry.action == "renewal.retry"
    assert entry.result == "ok"
    assert entry.detail == "customer paid"
    assert entry.cycle_id == cycle_id


def test_refused_action_is_audited(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    cycle_id = failed_cycle(runtime, store_a)
    sign_in(client, runtime)
    token = csrf_token(client.get(f"/renewals/{cycle_id}").get_data(as_text=True))

    client.post(f"/renewals/{cycle_id}/approve", data={"csrf_token": token})

    with runtime.sessions() as session:
        assert session.get(BillingCycle, cycle_id).state == CycleState.FAILED
        entry = session.scalars(sa.select(AuditEntry)).one()
    assert entry.action == "renewal.approve"
    assert entry.result.startswith("not approved")


def test_skip_and_cancel_actions(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    review = failed_cycle(runtime, store_a)
    sign_in(client, runtime)
    with runtime.sessions() as session:
        session.get(BillingCycle, review).state = CycleState.NEEDS_REVIEW
        session.commit()
    token = csrf_token(client.get(f"/renewals/{review}").get_data(as_text=True))

    client.post(f"/renewals/{review}/cancel", data={"csrf_token": token})

    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, review)
        assert cycle.state == CycleState.SKIPPED
        assert cycle.subscription.status == "canceled"


def test_resume_store_action(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    with runtime.sessions() as session:
        store = session.get(Store, store_a.store_id)
        store.billing_paused = True
        store.billing_paused_reason = "code 30002: stored instruments disabled"
        session.commit()
    sign_in(client, runtime)
    page = client.get("/stores").get_data(as_text=True)
    assert "stored instruments disabled" in page

    client.post(
        f"/stores/{store_a.store_id}/resume", data={"csrf_token": csrf_token(page)}
    )

    with runtime.sessions() as session:
        assert session.get(Store, store_a.store_id).billing_paused is False
        entry = session.scalars(sa.select(AuditEntry)).one()
    assert entry.action == "store.resume"
    assert "stored instruments disabled" in entry.detail


def test_logout_ends_session(
    client: FlaskClient, runtime: Runtime, web_app: Flask
) -> None:
    sign_in(client, runtime)
    token = csrf_token(client.get("/").get_data(as_text=True))

    client.post("/logout", data={"csrf_token": token})

    assert client.get("/").status_code == 302
