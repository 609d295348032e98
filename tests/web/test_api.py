from __future__ import annotations

import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask.testing import FlaskClient

from models import (
    AuditEntry,
    BillingCycle,
    ChargeAttempt,
    CycleState,
    OutcomeClass,
    Subscription,
)
from rebill.runtime import Runtime
from tests.web.conftest import NOW, StoreKey, new_subscription
from web.api_keys import key_prefix, revoke_api_key

TOKEN = "ab" * 32


def create(client: FlaskClient, store: StoreKey, **fields: object) -> dict:
    response = client.post(
        "/api/v1/subscriptions", json=new_subscription(**fields), headers=store.headers
    )
    assert response.status_code == 201, response.json
    return response.json


def count_subscriptions(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Subscription))


def error_fields(response) -> set[str]:
    return {error["field"] for error in response.json["errors"]}


def add_cycle(runtime: Runtime, subscription_id: int, **values: object) -> int:
    with runtime.sessions() as session:
        subscription = session.get(Subscription, subscription_id)
        values.setdefault("scheduled_at", NOW - timedelta(hours=2))
        cycle = BillingCycle(
            subscription_id=subscription.id,
            store_id=subscription.store_id,
            amount_minor=subscription.amount_minor,
            currency=subscription.currency,
            **values,
        )
        session.add(cycle)
        session.flush()
        session.add(
            ChargeAttempt(
                cycle_id=cycle.id,
                number=1,
                started_at=NOW - timedelta(hours=2),
                payment_sent_at=NOW - timedelta(hours=2),
                finished_at=NOW - timedelta(hours=2) + timedelta(seconds=1),
                outcome=OutcomeClass.SOFT_DECLINE,
                error_code=30106,
                http_status=422,
                message="insufficient funds",
                instrument_type="stored_card",
                instrument_brand="VISA",
                instrument_last4="4242",
            )
        )
        session.commit()
        return cycle.id


def test_create_returns_subscription(client: FlaskClient, store_a: StoreKey) -> None:
    response = client.post(
        "/api/v1/subscriptions",
        json=new_subscription(reference="gold-42", instrument_token=TOKEN),
        headers=store_a.headers,
    )

    assert response.status_code == 201, response.json
    body = response.json
    assert body["store"] == store_a.store_hash
    assert body["status"] == "active"
    assert body["amount"] == "21.50"
    assert body["amount_minor"] == 2150
    assert body["reference"] == "gold-42"
    assert body["has_instrument_token"] is True
    assert TOKEN not in response.get_data(as_text=True)
    assert response.headers["Location"].endswith(f"/subscriptions/{body['id']}")
    assert datetime.fromisoformat(body["next_billing_at"]) > NOW


def test_create_names_every_bad_field(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    body = new_subscription(customer_id=0, cron="61 * * * *", timezone="Mars/Base")

    response = client.post("/api/v1/subscriptions", json=body, headers=store_a.headers)

    assert response.status_code == 422
    assert error_fields(response) >= {"customer_id", "cron", "timezone"}
    assert count_subscriptions(runtime) == 0


def test_create_names_nested_template_field(
    client: FlaskClient, store_a: StoreKey
) -> None:
    body = new_subscription()
    body["order_template"]["products"][0]["quantity"] = 0

    response = client.post("/api/v1/subscriptions", json=body, headers=store_a.headers)

    assert response.status_code == 422
    assert "order_template.products[0].quantity" in error_fields(response)


def test_create_rejects_other_store(
    client: FlaskClient, store_a: StoreKey, store_b: StoreKey, runtime: Runtime
) -> None:
    body = new_subscription(store=store_b.store_hash)

    response = client.post("/api/v1/subscriptions", json=body, headers=store_a.headers)

    assert response.status_code == 422
    assert error_fields(response) == {"store"}
    assert count_subscriptions(runtime) == 0


def test_create_duplicate_reference_is_422(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    create(client, store_a, reference="r1")

    response = client.post(
        "/api/v1/subscriptions",
        json=new_subscription(reference="r1"),
        headers=store_a.headers,
    )

    assert response.status_code == 422
    assert error_fields(response) == {"reference"}
    assert count_subscriptions(runtime) == 1


def test_bad_bodies_are_rejected(client: FlaskClient, store_a: StoreKey) -> None:
    url = "/api/v1/subscriptions"
    headers = store_a.headers
    not_json = client.post(url, data="x", headers=headers, content_type="text/plain")
    broken = client.post(
        url, data="{", headers=headers, content_type="application/json"
    )
    array = client.post(url, json=[1], headers=headers)
    nan = client.post(
        url,
        data='{"customer_id": NaN}',
        headers=headers,
        content_type="application/json",
    )

    assert not_json.status_code == 415
    assert broken.status_code == 400
    assert array.status_code == 400
    assert nan.status_code == 400


def test_missing_or_bad_key_is_401(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    missing = client.get("/api/v1/subscriptions")
    wrong = client.get(
        "/api/v1/subscriptions", headers={"Authorization": "Bearer rbk_nope_nope"}
    )
    basic = client.get("/api/v1/subscriptions", headers={"Authorization": "Basic x"})

    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert basic.status_code == 401

    with runtime.sessions() as session:
        revoke_api_key(session, key_prefix(store_a.key), NOW)
        session.commit()
    revoked = client.get("/api/v1/subscriptions", headers=store_a.headers)
    assert revoked.status_code == 401


def test_store_endpoint_shows_key_store(client: FlaskClient, store_a: StoreKey) -> None:
    response = client.get("/api/v1/store", headers=store_a.headers)

    assert response.status_code == 200
    assert response.json["store"] == store_a.store_hash


def test_list_pages_and_filters(client: FlaskClient, store_a: StoreKey) -> None:
    ids = [create(client, store_a, reference=f"r{n}")["id"] for n in range(3)]
    client.post(f"/api/v1/subscriptions/{ids[1]}/pause", headers=store_a.headers)

    first = client.get("/api/v1/subscriptions?limit=2", headers=store_a.headers)
    second = client.get(
        f"/api/v1/subscriptions?limit=2&after={first.json['next_after']}",
        headers=store_a.headers,
    )
    paused = client.get("/api/v1/subscriptions?status=paused", headers=store_a.headers)
    by_reference = client.get(
        "/api/v1/subscriptions?reference=r2", headers=store_a.headers
    )

    assert [s["id"] for s in first.json["data"]] == ids[:2]
    assert [s["id"] for s in second.json["data"]] == ids[2:]
    assert second.json["next_after"] is None
    assert [s["id"] for s in paused.json["data"]] == [ids[1]]
    assert [s["id"] for s in by_reference.json["data"]] == [ids[2]]


def test_list_bad_query_names_parameter(client: FlaskClient, store_a: StoreKey) -> None:
    limit = client.get("/api/v1/subscriptions?limit=0", headers=store_a.headers)
    status = client.get("/api/v1/subscriptions?status=gone", headers=store_a.headers)

    assert limit.status_code == 422
    assert error_fields(limit) == {"limit"}
    assert status.status_code == 422
    assert error_fields(status) == {"status"}


def test_other_store_sees_404_everywhere(
    client: FlaskClient, store_a: StoreKey, store_b: StoreKey, runtime: Runtime
) -> None:
    subscription = create(client, store_a)
    sid = subscription["id"]
    cycle_id = add_cycle(runtime, sid, state=CycleState.FAILED)
    attempts = [
        ("get", f"/api/v1/subscriptions/{sid}", None),
        ("patch", f"/api/v1/subscriptions/{sid}", {"cron": "0 9 2 * *"}),
        ("post", f"/api/v1/subscriptions/{sid}/pause", None),
        ("post", f"/api/v1/subscriptions/{sid}/resume", None),
        ("post", f"/api/v1/subscriptions/{sid}/cancel", None),
        ("post", f"/api/v1/subscriptions/{sid}/skip-next", None),
        (
            "put",
            f"/api/v1/subscriptions/{sid}/instrument",
            {"payment_method_id": None, "instrument_token": None},
        ),
        ("get", f"/api/v1/subscriptions/{sid}/preview", None),
        ("get", f"/api/v1/subscriptions/{sid}/cycles", None),
        ("get", f"/api/v1/cycles/{cycle_id}", None),
        ("get", f"/api/v1/cycles/{cycle_id}/attempts", None),
    ]

    for method, url, body in attempts:
        response = getattr(client, method)(url, json=body, headers=store_b.headers)
        assert response.status_code == 404, (method, url)

    listing = client.get("/api/v1/subscriptions", headers=store_b.headers)
    assert listing.json["data"] == []
    unchanged = client.get(f"/api/v1/subscriptions/{sid}", headers=store_a.headers)
    assert unchanged.json == subscription


def test_patch_changes_schedule(client: FlaskClient, store_a: StoreKey) -> None:
    subscription = create(client, store_a)

    response = client.patch(
        f"/api/v1/subscriptions/{subscription['id']}",
        json={"cron": "30 8 15 * *", "reference": "new-ref"},
        headers=store_a.headers,
    )

    assert response.status_code == 200, response.json
    assert response.json["cron"] == "30 8 15 * *"
    assert response.json["reference"] == "new-ref"
    moved = datetime.fromisoformat(response.json["next_billing_at"])
    assert moved == datetime.fromisoformat("2026-03-15T08:30:00-05:00")


def test_patch_invalid_changes_nothing(client: FlaskClient, store_a: StoreKey) -> None:
    subscription = create(client, store_a)
    url = f"/api/v1/subscriptions/{subscription['id']}"

    response = client.patch(
        url,
        json={"cron": "bad", "currency": "XXX1", "customer_id": 7},
        headers=store_a.headers,
    )

    assert response.status_code == 422
    assert error_fields(response) == {"customer_id"}
    second = client.patch(
        url, json={"cron": "bad", "timezone": "Nowhere"}, headers=store_a.headers
    )
    assert second.status_code == 422
    assert error_fields(second) == {"cron", "timezone"}
    assert client.get(url, headers=store_a.headers).json == subscription


def test_pause_resume_cancel_flow(client: FlaskClient, store_a: StoreKey) -> None:
    sid = create(client, store_a)["id"]
    base = f"/api/v1/subscriptions/{sid}"

    paused = client.post(f"{base}/pause", headers=store_a.headers)
    resumed = client.post(f"{base}/resume", headers=store_a.headers)
    at_end = client.post(f"{base}/cancel?at=period_end", headers=store_a.headers)
    bad_at = client.post(f"{base}/cancel?at=later", headers=store_a.headers)
    canceled = client.post(f"{base}/cancel", headers=store_a.headers)
    resume_again = client.post(f"{base}/resume", headers=store_a.headers)

    assert paused.json["status"] == "paused"
    assert resumed.json["status"] == "active"
    assert at_end.json["status"] == "active"
    assert at_end.json["cancel_at"] == at_end.json["next_billing_at"]
    assert bad_at.status_code == 422
    assert error_fields(bad_at) == {"at"}
    assert canceled.json["status"] == "canceled"
    assert resume_again.status_code == 409


def test_resume_moves_past_billing_date(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    sid = create(client, store_a)["id"]
    client.post(f"/api/v1/subscriptions/{sid}/pause", headers=store_a.headers)
    with runtime.sessions() as session:
        session.get(Subscription, sid).next_billing_at = NOW - timedelta(days=40)
        session.commit()

    resumed = client.post(
        f"/api/v1/subscriptions/{sid}/resume", headers=store_a.headers
    )

    assert datetime.fromisoformat(resumed.json["next_billing_at"]) > NOW


def test_skip_next_moves_one_period(client: FlaskClient, store_a: StoreKey) -> None:
    subscription = create(client, store_a)

    skipped = client.post(
        f"/api/v1/subscriptions/{subscription['id']}/skip-next", headers=store_a.headers
    )

    before = datetime.fromisoformat(subscription["next_billing_at"])
    after = datetime.fromisoformat(skipped.json["next_billing_at"])
    assert (before.month % 12) + 1 == after.month
    assert after.day == 1


def test_instrument_set_and_cleared(client: FlaskClient, store_a: StoreKey) -> None:
    url = f"/api/v1/subscriptions/{create(client, store_a)['id']}/instrument"

    set_response = client.put(
        url,
        json={"payment_method_id": "stripe.card", "instrument_token": TOKEN},
        headers=store_a.headers,
    )
    bad = client.put(
        url,
        json={"payment_method_id": "has space", "instrument_token": "short"},
        headers=store_a.headers,
    )
    missing = client.put(url, json={}, headers=store_a.headers)
    extra = client.put(
        url,
        json={"payment_method_id": None, "instrument_token": None, "cron": "0 0 * * *"},
        headers=store_a.headers,
    )
    cleared = client.put(
        url,
        json={"payment_method_id": None, "instrument_token": None},
        headers=store_a.headers,
    )

    assert set_response.json["payment_method_id"] == "stripe.card"
    assert set_response.json["has_instrument_token"] is True
    assert bad.status_code == 422
    assert error_fields(bad) == {"payment_method_id", "instrument_token"}
    assert missing.status_code == 422
    assert error_fields(missing) == {"payment_method_id", "instrument_token"}
    assert extra.status_code == 422
    assert error_fields(extra) == {"cron"}
    assert cleared.json["has_instrument_token"] is False


def test_preview_lists_next_renewals(client: FlaskClient, store_a: StoreKey) -> None:
    subscription = create(client, store_a)
    url = f"/api/v1/subscriptions/{subscription['id']}/preview"

    preview = client.get(f"{url}?count=3", headers=store_a.headers)
    too_many = client.get(f"{url}?count=25", headers=store_a.headers)

    dates = [datetime.fromisoformat(r["billing_at"]) for r in preview.json["data"]]
    assert [d.isoformat() for d in dates] == [
        "2026-04-01T14:00:00+00:00",
        "2026-05-01T14:00:00+00:00",
        "2026-06-01T14:00:00+00:00",
    ]
    assert {r["amount"] for r in preview.json["data"]} == {"21.50"}
    assert too_many.status_code == 422

    client.post(
        f"/api/v1/subscriptions/{subscription['id']}/cancel?at=period_end",
        headers=store_a.headers,
    )
    ending = client.get(url, headers=store_a.headers)
    assert ending.json["data"] == []


def test_cycles_and_attempts_listed(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    sid = create(client, store_a)["id"]
    cycle_id = add_cycle(runtime, sid, state=CycleState.FAILED, last_error_code=30106)

    cycles = client.get(f"/api/v1/subscriptions/{sid}/cycles", headers=store_a.headers)
    cycle = client.get(f"/api/v1/cycles/{cycle_id}", headers=store_a.headers)
    attempts = client.get(
        f"/api/v1/cycles/{cycle_id}/attempts", headers=store_a.headers
    )

    assert [c["id"] for c in cycles.json["data"]] == [cycle_id]
    assert cycle.json["state"] == "failed"
    assert cycle.json["attempts"][0]["error_code"] == 30106
    assert attempts.json["data"][0]["instrument_last4"] == "4242"


def test_changes_write_audit_entries(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    sid = create(client, store_a)["id"]
    client.post(f"/api/v1/subscriptions/{sid}/pause", headers=store_a.headers)

    with runtime.sessions() as session:
        entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [entry.action for entry in entries] == [
        "subscription.create",
        "subscription.pause",
    ]
    assert entries[0].actor.startswith("api key rbk_")
    assert store_a.key not in entries[0].actor
    assert entries[1].subscription_id == sid


def test_openapi_lists_every_route(client: FlaskClient, web_app) -> None:
    document = client.get("/api/v1/openapi.json").json
    documented = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }

    for rule in web_app.url_map.iter_rules():
        if (
            not rule.rule.startswith("/api/v1/")
            or rule.endpoint == "api.openapi_document"
        ):
            continue
        path = rule.rule.removeprefix("/api/v1")
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented
