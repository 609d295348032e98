from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from models import AuditEntry, BillingCycle, CycleState, Store
from rebill.runtime import Runtime
from tests.factories import make_subscription
from tests.fixtures.billed_store import BilledStore
from tests.web.conftest import (
    NOW,
    OPERATOR_PASSWORD,
    SECRET_KEY,
    QueuedRenewals,
    StoreKey,
)
from tests.web.test_api import add_cycle
from web.app import create_app
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


def only_audit_entry(runtime: Runtime) -> AuditEntry:
    with runtime.sessions() as session:
        return session.scalars(sa.select(AuditEntry)).one()


@pytest.fixture
def billed_client(billed_store: BilledStore, queued: QueuedRenewals) -> FlaskClient:
    """A dashboard on the billed store's database, at the billed store's time."""
    app = create_app(
        billed_store.runtime,
        enqueue=queued,
        clock=lambda: billed_store.now,
        secret_key=SECRET_KEY,
    )
    app.config["TESTING"] = True
    return app.test_client()


def unknown_outcome_cycle(
    billed_store: BilledStore, fault: str, **options: object
) -> int:
    """Renew one subscription with a payments fault that leaves the outcome unknown."""
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(customer)
    billed_store.inject("payments", fault, **options)
    billed_store.tick_and_work()
    cycle = billed_store.cycle()
    assert cycle.state == CycleState.UNKNOWN
    return cycle.id


def press_retry(client: FlaskClient, runtime: Runtime, cycle_id: int) -> str:
    """Sign in, press "retry now" on the renewal and return the page that follows."""
    sign_in(client, runtime)
    token = csrf_token(client.get(f"/renewals/{cycle_id}").get_data(as_text=True))
    response = client.post(
        f"/renewals/{cycle_id}/retry",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert response.status_code == 200
    return response.get_data(as_text=True)


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
        assert cycle.approved_by == "operator alice"
        entry = session.scalars(sa.select(AuditEntry)).one()
    assert entry.actor == "operator alice"
    assert entry.action == "retry_cycle_now"
    assert entry.result == "ok"
    assert entry.detail.startswith(f"cycle {cycle_id} queued for a new attempt")
    assert entry.detail.endswith("; note: customer paid")
    assert entry.cycle_id == cycle_id
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"cycle {cycle_id}: retry queued" in page


def test_retry_now_marks_found_payment_paid(
    billed_client: FlaskClient, billed_store: BilledStore, queued: QueuedRenewals
) -> None:
    cycle_id = unknown_outcome_cycle(billed_store, "drop_after_charge")

    page = press_retry(billed_client, billed_store.runtime, cycle_id)

    assert queued.cycle_ids == []
    assert billed_store.cycle(cycle_id).state == CycleState.PAID
    assert billed_store.charges() == 1
    entry = only_audit_entry(billed_store.runtime)
    assert entry.action == "retry_cycle_now"
    assert entry.result == "ok"
    assert entry.cycle_id == cycle_id
    assert "marked paid" in entry.detail
    assert "marked paid" in page


def test_retry_now_reconciles_then_queues(
    billed_client: FlaskClient, billed_store: BilledStore, queued: QueuedRenewals
) -> None:
    cycle_id = unknown_outcome_cycle(billed_store, "server_error", status=503)

    page = press_retry(billed_client, billed_store.runtime, cycle_id)

    assert queued.cycle_ids == [cycle_id]
    assert billed_store.cycle(cycle_id).state == CycleState.RETRY_SCHEDULED
    assert billed_store.charges() == 0
    assert f"cycle {cycle_id}: retry queued" in page
    entry = only_audit_entry(billed_store.runtime)
    assert entry.action == "retry_cycle_now"
    assert entry.result == "ok"
    billed_store.queue.extend(queued.cycle_ids)
    billed_store.work()
    cycle = billed_store.cycle(cycle_id)
    assert cycle.state == CycleState.PAID
    assert billed_store.charges(cycle.order_id) == 1


def test_rejected_retry_shows_reason(
    billed_client: FlaskClient, billed_store: BilledStore, queued: QueuedRenewals
) -> None:
    customer, _ = billed_store.add_customer({"is_default": True, "behavior": 30105})
    billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    cycle_id = billed_store.cycle().id

    page = press_retry(billed_client, billed_store.runtime, cycle_id)

    assert queued.cycle_ids == []
    assert billed_store.cycle(cycle_id).state == CycleState.UNKNOWN
    entry = only_audit_entry(billed_store.runtime)
    assert entry.action == "retry_cycle_now"
    assert entry.cycle_id == cycle_id
    assert "duplicate transaction (code 30105)" in entry.result
    assert "duplicate transaction (code 30105)" in page


def test_refused_action_is_audited(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    cycle_id = failed_cycle(runtime, store_a)
    sign_in(client, runtime)
    token = csrf_token(client.get(f"/renewals/{cycle_id}").get_data(as_text=True))

    response = client.post(
        f"/renewals/{cycle_id}/approve",
        data={"csrf_token": token, "note": "customer asked"},
        follow_redirects=True,
    )

    with runtime.sessions() as session:
        assert session.get(BillingCycle, cycle_id).state == CycleState.FAILED
        entry = session.scalars(sa.select(AuditEntry)).one()
    assert entry.actor == "operator alice"
    assert entry.action == "approve_cycle"
    assert entry.cycle_id == cycle_id
    reason = f"cycle {cycle_id}: cannot approve a cycle that is failed"
    assert entry.result.startswith(reason)
    assert entry.detail == "note: customer asked"
    assert reason in response.get_data(as_text=True)


def test_skip_and_cancel_actions(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    review = failed_cycle(runtime, store_a)
    dunning = failed_cycle(runtime, store_a)
    sign_in(client, runtime)
    with runtime.sessions() as session:
        session.get(BillingCycle, review).state = CycleState.NEEDS_REVIEW
        session.get(BillingCycle, dunning).state = CycleState.RETRY_SCHEDULED
        session.commit()
    token = csrf_token(client.get(f"/renewals/{review}").get_data(as_text=True))

    client.post(f"/renewals/{dunning}/skip", data={"csrf_token": token})
    client.post(f"/renewals/{review}/cancel", data={"csrf_token": token})

    with runtime.sessions() as session:
        skipped = session.get(BillingCycle, dunning)
        assert skipped.state == CycleState.SKIPPED
        assert skipped.subscription.status == "active"
        canceled = session.get(BillingCycle, review)
        assert canceled.state == CycleState.SKIPPED
        assert canceled.subscription.status == "canceled"
        entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [entry.action for entry in entries] == ["skip_cycle", "cancel_subscription"]
    assert [entry.cycle_id for entry in entries] == [dunning, review]
    assert [entry.result for entry in entries] == ["ok", "ok"]
    timeline = client.get(f"/renewals/{review}").get_data(as_text=True)
    assert "operator alice · cancel_subscription · ok" in timeline


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

    response = client.post(
        f"/stores/{store_a.store_id}/resume",
        data={"csrf_token": csrf_token(page)},
        follow_redirects=True,
    )

    with runtime.sessions() as session:
        assert session.get(Store, store_a.store_id).billing_paused is False
        entry = session.scalars(sa.select(AuditEntry)).one()
    assert entry.action == "resume_store"
    assert entry.result == "ok"
    assert entry.store_id == store_a.store_id
    assert "stored instruments disabled" in entry.detail
    assert "storea billing resumed" in response.get_data(as_text=True)


def test_resume_of_active_store_is_rejected(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    sign_in(client, runtime)
    token = csrf_token(client.get("/stores").get_data(as_text=True))

    response = client.post(
        f"/stores/{store_a.store_id}/resume",
        data={"csrf_token": token},
        follow_redirects=True,
    )

    with runtime.sessions() as session:
        entry = session.scalars(sa.select(AuditEntry)).one()
    assert entry.action == "resume_store"
    assert entry.result == "store storea: billing is not paused"
    assert entry.detail == ""
    assert "store storea: billing is not paused" in response.get_data(as_text=True)


def test_awaiting_instrument_counts_as_failure(
    client: FlaskClient, runtime: Runtime, store_a: StoreKey
) -> None:
    cycle_id = failed_cycle(runtime, store_a)
    with runtime.sessions() as session:
        session.get(BillingCycle, cycle_id).state = CycleState.AWAITING_INSTRUMENT
        session.commit()
    sign_in(client, runtime)

    overview = client.get("/").get_data(as_text=True)
    failures = client.get("/failures").get_data(as_text=True)

    assert '<span class="count">1</span> in dunning' in overview
    assert f"#{cycle_id}" in failures


def test_logout_ends_session(
    client: FlaskClient, runtime: Runtime, web_app: Flask
) -> None:
    sign_in(client, runtime)
    token = csrf_token(client.get("/").get_data(as_text=True))

    client.post("/logout", data={"csrf_token": token})

    assert client.get("/").status_code == 302
