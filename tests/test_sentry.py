"""Sentry reports of failing charges, sent through sentry-sdk's HTTP transport
to a local endpoint, with the renewal running against the sandbox."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk

from models import BillingCycle, CycleState, utcnow
from rebill.logs import REDACTED
from rebill.runtime import Runtime
from rebill.sentry import MONITOR_SLUG, init_sentry, scrub
from rebill.settings import Settings
from sandbox.server import SandboxServer
from scheduler.daemon import celery_enqueue
from scheduler.tick import tick
from tests.factories import make_store, make_subscription
from tests.fixtures.sandbox import SeededStore
from tests.processes import celery_worker, role_environment, running, wait_until
from tests.sentry_server import SentryServer, event_text
from worker.renewal import renew

pytestmark = pytest.mark.usefixtures("restore_logging")

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
PAT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLXZhbHVl"
DECLINING_CUSTOMER = 44


@pytest.fixture
def sentry_server() -> Iterator[SentryServer]:
    with SentryServer() as server:
        yield server


@pytest.fixture
def sentry_on(settings: Settings, sentry_server: SentryServer) -> Iterator[None]:
    """sentry-sdk reporting to `sentry_server` for the test, then off again."""
    assert init_sentry(replace(settings, sentry_dsn=sentry_server.dsn), role="test")
    yield
    sentry_sdk.get_client().close()
    sentry_sdk.init()


def add_cycle(
    runtime: Runtime,
    sandbox: SandboxServer,
    store: SeededStore,
    customer_id: int = 42,
) -> int:
    """Add the store and a due subscription, open its cycle and return the id."""
    with runtime.sessions() as session:
        row = make_store(
            session,
            store.store_hash,
            access_token=store.access_token,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
        )
        make_subscription(
            session,
            row,
            customer_id=customer_id,
            next_billing_at=utcnow() - timedelta(minutes=1),
        )
        session.commit()
    (cycle_id,) = tick(runtime, utcnow(), lambda _cycle_id: None).opened
    return cycle_id


def secrets_of(sandbox: SandboxServer, store: SeededStore) -> list[str]:
    """The API token and every instrument token the sandbox handed out."""
    tokens = [store.access_token]
    for customer in store.customers.values():
        tokens += [customer.card_token, customer.paypal_token]
    return tokens


def assert_no_secrets(raw: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in raw
    assert JWT.search(raw) is None
    assert "PAT ey" not in raw


def error_events(server: SentryServer) -> list[dict[str, Any]]:
    sentry_sdk.flush()
    return [event for event in server.events() if event.get("level") == "error"]


def test_scrub_replaces_secrets_by_key_and_shape() -> None:
    event = {
        "extra": {"headers": {"X-Auth-Token": "abc", "Accept": "application/json"}},
        "frames": [{"vars": {"pat": PAT, "order_id": 7, "access_token": "t0k3n"}}],
        "message": f"token {'ab' * 32} used",
    }
    scrubbed = scrub(event)
    assert scrubbed["extra"]["headers"]["X-Auth-Token"] == REDACTED
    assert scrubbed["extra"]["headers"]["Accept"] == "application/json"
    assert scrubbed["frames"][0]["vars"]["pat"] == REDACTED
    assert scrubbed["frames"][0]["vars"]["access_token"] == REDACTED
    assert scrubbed["frames"][0]["vars"]["order_id"] == 7
    assert scrubbed["message"] == f"token {REDACTED} used"


@pytest.mark.usefixtures("sentry_on")
def test_card_decline_is_not_reported(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    sentry_server: SentryServer,
) -> None:
    sandbox.state.add_customer(seeded_store.store_hash, DECLINING_CUSTOMER)
    declined = sandbox.state.add_instrument(
        seeded_store.store_hash, DECLINING_CUSTOMER, is_default=True, behavior=30106
    )
    cycle_id = add_cycle(runtime, sandbox, seeded_store, DECLINING_CUSTOMER)
    renew(cycle_id, runtime)
    # A known error afterwards shows that reporting works in this test.
    logging.getLogger("tests.sentry").error("marker after the decline")
    events = error_events(sentry_server)
    assert [event_text(event) for event in events] == ["marker after the decline"]
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        assert cycle is not None
        assert cycle.last_error_code == 30106
    assert_no_secrets(
        sentry_server.raw(), [*secrets_of(sandbox, seeded_store), declined]
    )


@pytest.mark.usefixtures("sentry_on")
@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ({"kind": "drop_after_charge"}, "unknown"),
        ({"kind": "server_error", "status": 502}, "unknown"),
        ({"kind": "error", "code": 30000, "status": 422}, "merchant_config"),
    ],
    ids=["answer-lost", "gateway-502", "no-gateway"],
)
def test_outcomes_needing_a_person_are_reported(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    sentry_server: SentryServer,
    fault: dict[str, Any],
    outcome: str,
) -> None:
    sandbox.state.inject_fault(seeded_store.store_hash, "payments", **fault)
    cycle_id = add_cycle(runtime, sandbox, seeded_store)
    renew(cycle_id, runtime)
    events = error_events(sentry_server)
    assert len(events) == 1
    text = event_text(events[0])
    assert f"subscription 1 cycle {cycle_id} order" in text
    assert f": {outcome}, cycle" in text
    assert events[0]["tags"]["role"] == "test"
    assert_no_secrets(sentry_server.raw(), secrets_of(sandbox, seeded_store))


@pytest.mark.usefixtures("sentry_on")
def test_exception_locals_are_scrubbed(
    seeded_store: SeededStore, sentry_server: SentryServer
) -> None:
    card_token = seeded_store.customers[42].card_token

    def send_payment(pat: str, instrument_token: str, headers: dict[str, str]) -> None:
        raise RuntimeError("payments host closed the connection")

    try:
        send_payment(
            PAT,
            card_token,
            {"Authorization": f"PAT {PAT}", "X-Auth-Token": seeded_store.access_token},
        )
    except RuntimeError:
        logging.getLogger("tests.sentry").exception("charge failed")
    (event,) = error_events(sentry_server)
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    variables = frames[-1]["vars"]
    assert variables["pat"] == REDACTED
    assert variables["instrument_token"] == REDACTED
    assert_no_secrets(sentry_server.raw(), [card_token, seeded_store.access_token])


def test_worker_reports_unknown_outcome(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    sentry_server: SentryServer,
    tmp_path: Path,
) -> None:
    sandbox.state.inject_fault(seeded_store.store_hash, "payments", "drop_after_charge")
    cycle_id = add_cycle(runtime, sandbox, seeded_store)
    celery_enqueue(runtime)(cycle_id)
    with celery_worker(
        runtime.settings, tmp_path, REBILL_SENTRY_DSN=sentry_server.dsn
    ) as worker:
        wait_until(lambda: sentry_server.events(), "the worker's Sentry event")
        assert worker.terminate() == 0
    (event,) = sentry_server.events()
    assert event["level"] == "error"
    assert event["tags"]["role"] == "worker"
    assert f"cycle {cycle_id} order" in event_text(event)
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        assert cycle is not None
        assert cycle.state == CycleState.UNKNOWN
    assert_no_secrets(sentry_server.raw(), secrets_of(sandbox, seeded_store))


def test_scheduler_checks_in_each_tick(
    settings: Settings, sentry_server: SentryServer, tmp_path: Path
) -> None:
    env = role_environment(
        settings,
        REBILL_SCHEDULER_INTERVAL="0.2",
        REBILL_SENTRY_DSN=sentry_server.dsn,
    )
    command = [str(Path(sys.executable).parent / "rebill"), "scheduler"]
    with running(command, env, tmp_path / "scheduler.log") as scheduler:
        wait_until(
            lambda: any(c["status"] == "ok" for c in sentry_server.check_ins()),
            "an ok check-in",
        )
        assert scheduler.terminate() == 0
    check_ins = sentry_server.check_ins()
    started = [c for c in check_ins if c["status"] == "in_progress"]
    finished = [c for c in check_ins if c["status"] == "ok"]
    assert {c["monitor_slug"] for c in check_ins} == {MONITOR_SLUG}
    assert finished[0]["check_in_id"] in {c["check_in_id"] for c in started}
    schedule = started[0]["monitor_config"]["schedule"]
    assert schedule == {"type": "interval", "value": 1, "unit": "minute"}
