"""No secret reaches a log line, even at DEBUG, in-process or in a Celery worker.

Renewals run against the sandbox with paid, declined, unknown and expired-card
outcomes. The in-process run logs through a plain handler, without rebill's
redacting filter, so it shows that the code itself never logs a secret. The
worker run scans everything the process prints, Celery's and urllib3's lines
included.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from models import BillingCycle, CycleState, utcnow
from rebill.logs import Redactor, luhn_valid
from rebill.runtime import Runtime
from sandbox.server import SandboxServer
from scheduler.daemon import celery_enqueue
from scheduler.tick import tick
from tests.factories import make_store, make_subscription
from tests.fixtures.runtime import TEST_SECRET_KEY
from tests.fixtures.sandbox import SeededStore
from tests.processes import celery_worker, wait_until
from worker.renewal import renew

pytestmark = pytest.mark.usefixtures("restore_logging")

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
DECLINING_CUSTOMER = 44
EXPIRED_CUSTOMER = 45
FINISHED = (
    CycleState.PAID,
    CycleState.UNKNOWN,
    CycleState.RETRY_SCHEDULED,
    CycleState.AWAITING_INSTRUMENT,
)


@pytest.fixture
def debug_output() -> Iterator[io.StringIO]:
    """Every record of every logger at DEBUG, formatted without redaction."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)
    yield stream


def seed_renewals(
    runtime: Runtime, sandbox: SandboxServer, store: SeededStore
) -> tuple[list[int], list[str]]:
    """Add four due renewals ending paid, declined, unknown and on an expired card.

    Returns the cycle ids and every secret the sandbox handed out.
    """
    state = sandbox.state
    secrets = [store.access_token]
    for customer in store.customers.values():
        secrets += [customer.card_token, customer.paypal_token]
    state.add_customer(store.store_hash, DECLINING_CUSTOMER)
    secrets.append(
        state.add_instrument(
            store.store_hash, DECLINING_CUSTOMER, is_default=True, behavior=30106
        )
    )
    state.add_customer(store.store_hash, EXPIRED_CUSTOMER)
    secrets.append(
        state.add_instrument(
            store.store_hash,
            EXPIRED_CUSTOMER,
            is_default=True,
            expiry_month=1,
            expiry_year=2020,
        )
    )
    # Customer 43's payment is taken but its response is lost: unknown outcome.
    state.inject_fault(store.store_hash, "payments", "drop_after_charge")
    with runtime.sessions() as session:
        row = make_store(
            session,
            store.store_hash,
            access_token=store.access_token,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
        )
        for customer_id in (43, 42, DECLINING_CUSTOMER, EXPIRED_CUSTOMER):
            make_subscription(
                session,
                row,
                customer_id=customer_id,
                next_billing_at=utcnow() - timedelta(minutes=1),
            )
        session.commit()
    opened = tick(runtime, utcnow(), lambda _cycle_id: None).opened
    return opened, secrets


def states(runtime: Runtime, cycle_ids: list[int]) -> list[str]:
    with runtime.sessions() as session:
        return [
            str(session.get(BillingCycle, cycle_id).state)  # type: ignore[union-attr]
            for cycle_id in cycle_ids
        ]


def find_secrets(output: str, secrets: list[str]) -> list[str]:
    """Return a description of every secret found in `output`."""
    found = [f"secret ending {secret[-4:]}" for secret in secrets if secret in output]
    found += [f"JWT {match[:12]}..." for match in JWT.findall(output)]
    found += ["PAT header" for _ in re.findall(r"PAT ey", output)]
    for match in Redactor.CARD.finditer(output):
        if luhn_valid(re.sub(r"\D", "", match.group(0))):
            found.append(f"card-like number {match.group(0)}")
    if TEST_SECRET_KEY in output:
        found.append("REBILL_SECRET_KEY")
    return found


def test_debug_logs_of_renewals_hold_no_secret(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    debug_output: io.StringIO,
) -> None:
    cycle_ids, secrets = seed_renewals(runtime, sandbox, seeded_store)
    for cycle_id in cycle_ids:
        renew(cycle_id, runtime)
    output = debug_output.getvalue()
    # The declined card waits for a dunning retry, the expired one for a new card.
    assert states(runtime, cycle_ids) == [
        "unknown",
        "paid",
        "retry_scheduled",
        "awaiting_instrument",
    ]
    assert "DEBUG urllib3.connectionpool:" in output
    assert "POST process payment -> 201" in output
    assert find_secrets(output, secrets) == []


def test_debug_output_of_worker_holds_no_secret(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    tmp_path: Path,
) -> None:
    cycle_ids, secrets = seed_renewals(runtime, sandbox, seeded_store)
    enqueue = celery_enqueue(runtime)
    for cycle_id in cycle_ids:
        enqueue(cycle_id)
    with celery_worker(runtime.settings, tmp_path, REBILL_LOG_LEVEL="DEBUG") as worker:
        wait_until(
            lambda: all(state in FINISHED for state in states(runtime, cycle_ids)),
            "every renewal to finish",
        )
        assert worker.terminate() == 0
    output = worker.output
    # Two threads race for the one dropped response, so any cycle may get it.
    assert sorted(states(runtime, cycle_ids)) == [
        "awaiting_instrument",
        "paid",
        "retry_scheduled",
        "unknown",
    ]
    assert "DEBUG [" in output
    assert "urllib3.connectionpool:" in output
    assert "celery.worker" in output
    assert find_secrets(output, secrets) == []
    # The redacting filter had nothing to replace: no code tried to log a secret.
    assert "[redacted]" not in output
