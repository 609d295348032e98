"""Fuzz the merchant API from its own OpenAPI document with schemathesis.

Every generated request must get a response that is not a 5xx and that
matches the document. A request that gets an error response must leave the
database as it was, so no error leaves a partial write.
"""

from __future__ import annotations

import hashlib

import pytest
import schemathesis
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models import AuditEntry, BillingCycle, CycleState, Subscription
from rebill.runtime import Runtime
from tests.web.conftest import StoreKey, new_subscription
from tests.web.test_api import add_cycle
from web.api.openapi import build_spec

# Examples per operation and database. The module took about 40 s on a 2-core
# machine (both databases).
MAX_EXAMPLES = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def targets(client, store_a: StoreKey, runtime: Runtime) -> dict[str, int]:
    """A subscription and a renewal of store_a for the path parameters."""
    created = client.post(
        "/api/v1/subscriptions",
        json=new_subscription(reference="fuzz-target"),
        headers=store_a.headers,
    )
    assert created.status_code == 201, created.json
    subscription_id = created.json["id"]
    cycle_id = add_cycle(runtime, subscription_id, state=CycleState.FAILED)
    return {"subscription_id": subscription_id, "cycle_id": cycle_id}


def database_snapshot(runtime: Runtime) -> str:
    """Digest of every row the API can write, except API key last-use times."""
    digest = hashlib.sha256()
    with runtime.sessions() as session:
        for model in (Subscription, BillingCycle, AuditEntry):
            columns = [c for c in model.__table__.columns]
            rows = session.execute(sa.select(*columns).order_by(columns[0]))
            for row in rows:
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def documented_operations() -> list[tuple[str, str]]:
    document = build_spec().to_dict()
    return [
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    ]


# NOTE: schemathesis 4.32's pytest plugin (from_fixture) fails under pytest 9.2
# ("'Function' object has no attribute '_nodeid'"), so each operation's
# hypothesis strategy is driven directly instead.
@pytest.mark.parametrize(("path", "method"), documented_operations())
def test_api_fuzz(
    path: str,
    method: str,
    web_app: Flask,
    store_a: StoreKey,
    targets: dict[str, int],
    runtime: Runtime,
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", web_app)
    operation = schema[path][method]
    statuses: list[int] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case) -> None:
        for name, value in targets.items():
            if case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = value
        before = database_snapshot(runtime)

        response = case.call_and_validate(headers=store_a.headers, checks=CHECKS)

        statuses.append(response.status_code)
        if response.status_code >= 400:
            assert database_snapshot(runtime) == before

    check()

    assert statuses, f"no request was generated for {method} {path}"
    print(f"{method} {path}: statuses {sorted(set(statuses))}")
