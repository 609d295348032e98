from __future__ import annotations

import csv
import io
import json

import sqlalchemy as sa
from flask.testing import FlaskClient

from models import AuditEntry, Subscription
from rebill.runtime import Runtime
from tests.web.conftest import StoreKey, new_subscription

URL = "/api/v1/subscriptions/import"


def references(runtime: Runtime) -> list[str | None]:
    with runtime.sessions() as session:
        return list(
            session.scalars(sa.select(Subscription.reference).order_by(Subscription.id))
        )


def as_csv(records: list[dict]) -> str:
    output = io.StringIO()
    writer = csv.DictWriter(output, fieldnames=sorted({k for r in records for k in r}))
    writer.writeheader()
    for record in records:
        row = dict(record)
        if "order_template" in row:
            row["order_template"] = json.dumps(row["order_template"])
        writer.writerow(row)
    return output.getvalue()


def post(client: FlaskClient, store: StoreKey, body: str, content_type: str):
    return client.post(URL, data=body, headers=store.headers, content_type=content_type)


def test_json_array_import_adds_all(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    records = [new_subscription(reference=f"r{n}") for n in range(3)]

    response = post(client, store_a, json.dumps(records), "application/json")

    assert response.status_code == 201, response.json
    assert response.json["imported"] == 3
    assert references(runtime) == ["r0", "r1", "r2"]
    with runtime.sessions() as session:
        entry = session.scalars(sa.select(AuditEntry)).one()
    assert entry.action == "subscription.import"


def test_json_lines_import_adds_all(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    lines = "\n".join(json.dumps(new_subscription(reference=f"l{n}")) for n in range(2))

    response = post(client, store_a, lines + "\n\n", "application/x-ndjson")

    assert response.status_code == 201, response.json
    assert references(runtime) == ["l0", "l1"]


def test_csv_import_adds_all(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    records = [new_subscription(reference=f"c{n}") for n in range(2)]

    response = post(client, store_a, "\ufeff" + as_csv(records), "text/csv")

    assert response.status_code == 201, response.json
    assert references(runtime) == ["c0", "c1"]


def test_import_with_bad_rows_writes_nothing(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    records = [
        new_subscription(reference="ok-1"),
        new_subscription(reference="bad-1", cron="0 9 1 * * *"),
        new_subscription(reference="ok-2"),
        new_subscription(reference="ok-1"),
        new_subscription(reference="bad-2", customer_id=0, timezone="Nowhere"),
    ]

    response = post(client, store_a, json.dumps(records), "application/json")

    assert response.status_code == 422
    errors = {(e["record"], e["field"]) for e in response.json["errors"]}
    assert errors == {
        ("record 2", "cron"),
        ("record 4", "reference"),
        ("record 5", "customer_id"),
        ("record 5", "timezone"),
    }
    assert references(runtime) == []


def test_import_conflict_with_stored_reference(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    client.post(
        "/api/v1/subscriptions",
        json=new_subscription(reference="taken"),
        headers=store_a.headers,
    )
    lines = "\n".join(
        json.dumps(new_subscription(reference=r)) for r in ("fresh", "taken")
    )

    response = post(client, store_a, lines, "application/x-ndjson")

    assert response.status_code == 422
    assert [(e["record"], e["field"]) for e in response.json["errors"]] == [
        ("line 2", "reference")
    ]
    assert references(runtime) == ["taken"]


def test_import_rejects_other_store_rows(
    client: FlaskClient, store_a: StoreKey, store_b: StoreKey, runtime: Runtime
) -> None:
    records = [new_subscription(store=store_b.store_hash)]

    response = post(client, store_a, json.dumps(records), "application/json")

    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "store"
    assert references(runtime) == []


def test_import_reports_broken_lines(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    body = json.dumps(new_subscription()) + "\n{not json\n" + '{"a": 1, "a": 2}\n'

    response = post(client, store_a, body, "application/x-ndjson")

    assert response.status_code == 422
    fields = [(e["record"], e["field"]) for e in response.json["errors"]]
    assert ("line 2", "json") in fields
    assert ("line 3", "json") in fields
    assert references(runtime) == []


def test_import_bad_csv_header_is_422(client: FlaskClient, store_a: StoreKey) -> None:
    response = post(client, store_a, "customer_id,colour\n42,red\n", "text/csv")

    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "header"
    assert "'colour'" in response.json["errors"][0]["message"]


def test_import_bad_bodies(client: FlaskClient, store_a: StoreKey) -> None:
    empty = post(client, store_a, "[]", "application/json")
    not_array = post(client, store_a, '{"a": 1}', "application/json")
    unclosed = post(
        client, store_a, json.dumps([new_subscription()])[:-1], "application/json"
    )
    trailing = post(client, store_a, "[] []", "application/json")
    wrong_type = post(client, store_a, "x", "text/plain")
    not_utf8 = client.post(
        URL, data=b"[\xff]", headers=store_a.headers, content_type="application/json"
    )

    assert empty.status_code == 422
    assert not_array.status_code == 400
    assert unclosed.status_code == 400
    assert trailing.status_code == 400
    assert wrong_type.status_code == 415
    assert not_utf8.status_code == 400


def test_json_array_reads_across_chunks(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    # Each record is about 600 characters, so 300 of them span several reads.
    records = [new_subscription(reference=f"bulk-{n}") for n in range(300)]

    response = post(client, store_a, json.dumps(records, indent=1), "application/json")

    assert response.status_code == 201, response.json
    assert response.json["imported"] == 300
    assert len(references(runtime)) == 300
