"""A real `celery -A worker worker` process: start-up checks, health and SIGTERM."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from models import BillingCycle, ChargeAttempt, CycleState, utcnow
from rebill.cli import main
from rebill.encryption import generate_key
from rebill.runtime import Runtime
from rebill.settings import Settings
from sandbox.server import SandboxServer
from scheduler.daemon import celery_enqueue
from scheduler.tick import recover_stalled, tick
from tests.factories import make_store, make_subscription
from tests.fixtures.sandbox import SeededStore
from tests.processes import celery_worker, wait_until

pytestmark = pytest.mark.usefixtures("restore_logging")


def add_due_renewal(
    runtime: Runtime, sandbox: SandboxServer, store: SeededStore
) -> int:
    """Add a due subscription of customer 42, run a tick and return the cycle id."""
    with runtime.sessions() as session:
        row = make_store(
            session,
            store.store_hash,
            access_token=store.access_token,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
        )
        make_subscription(session, row, next_billing_at=utcnow() - timedelta(minutes=1))
        session.commit()
    result = tick(runtime, utcnow(), celery_enqueue(runtime))
    (cycle_id,) = result.opened
    return cycle_id


def cycle_of(runtime: Runtime, cycle_id: int) -> BillingCycle:
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        assert cycle is not None
        return cycle


def payment_sent(runtime: Runtime, cycle_id: int) -> bool:
    with runtime.sessions() as session:
        sent = session.scalar(
            sa.select(ChargeAttempt.payment_sent_at).where(
                ChargeAttempt.cycle_id == cycle_id
            )
        )
    return sent is not None


def test_worker_renews_a_due_cycle(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    tmp_path: Path,
) -> None:
    cycle_id = add_due_renewal(runtime, sandbox, seeded_store)
    with celery_worker(runtime.settings, tmp_path) as worker:
        wait_until(
            lambda: cycle_of(runtime, cycle_id).state == CycleState.PAID,
            "the cycle to be paid",
        )
        assert worker.terminate() == 0
    cycle = cycle_of(runtime, cycle_id)
    assert cycle.order_id is not None
    assert sandbox.state.charges_for_order(seeded_store.store_hash, cycle.order_id) == 1


def test_worker_with_wrong_key_does_not_start(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    tmp_path: Path,
) -> None:
    cycle_id = add_due_renewal(runtime, sandbox, seeded_store)
    wrong = replace(runtime.settings, secret_key=generate_key())
    with celery_worker(wrong, tmp_path) as worker:
        status = worker.process.wait(timeout=60)
    assert status == 1
    assert "no key in REBILL_SECRET_KEY decrypts the API token of store" in (
        worker.output
    )
    assert cycle_of(runtime, cycle_id).state == CycleState.DUE
    assert sandbox.state.orders(seeded_store.store_hash) == []


def test_worker_with_invalid_setting_names_it(
    settings: Settings, tmp_path: Path
) -> None:
    with celery_worker(settings, tmp_path, REBILL_LOG_FORMAT="xml") as worker:
        status = worker.process.wait(timeout=60)
    assert status == 1
    assert "REBILL_LOG_FORMAT='xml' is invalid: use text or json" in worker.output
    assert "Traceback" not in worker.output


def test_sigterm_lets_a_slow_payment_finish(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    tmp_path: Path,
) -> None:
    # The sandbox waits 3 s before it takes the charge and responds, so the
    # payment is in flight when SIGTERM arrives.
    sandbox.state.inject_fault(seeded_store.store_hash, "payments", "slow", delay=3)
    cycle_id = add_due_renewal(runtime, sandbox, seeded_store)
    with celery_worker(runtime.settings, tmp_path) as worker:
        wait_until(lambda: payment_sent(runtime, cycle_id), "the payment to be sent")
        status = worker.terminate()
    cycle = cycle_of(runtime, cycle_id)
    assert status == 0, worker.output
    assert cycle.state == CycleState.PAID
    assert cycle.order_id is not None
    assert sandbox.state.charges_for_order(seeded_store.store_hash, cycle.order_id) == 1
    assert "SIGTERM received, warm shutdown started" in worker.output


def test_shutdown_timeout_leaves_renewal_to_recovery(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    tmp_path: Path,
) -> None:
    # The charge is taken at once, but its response comes after 30 s, well
    # past the worker's 1 s shutdown bound.
    sandbox.state.inject_fault(
        seeded_store.store_hash, "payments", "stall_after_charge", delay=30
    )
    cycle_id = add_due_renewal(runtime, sandbox, seeded_store)
    with celery_worker(
        runtime.settings, tmp_path, REBILL_SHUTDOWN_TIMEOUT="1"
    ) as worker:
        wait_until(lambda: payment_sent(runtime, cycle_id), "the payment to be sent")
        status = worker.terminate()
    assert status == 1
    assert (
        f"renewals still running after REBILL_SHUTDOWN_TIMEOUT=1 s: cycle(s) {cycle_id}"
        in (worker.output)
    )
    assert cycle_of(runtime, cycle_id).state == CycleState.CHARGING
    later = utcnow() + timedelta(seconds=runtime.settings.charge_lease + 1)
    with runtime.sessions() as session:
        assert (
            recover_stalled(
                session, later, timedelta(seconds=runtime.settings.charge_lease)
            )
            == 1
        )
        session.commit()
    assert cycle_of(runtime, cycle_id).state == CycleState.UNKNOWN


def test_worker_health_follows_the_process(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REBILL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REBILL_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REBILL_HEALTH_TIMEOUT", "1")
    runner = CliRunner()
    with celery_worker(settings, tmp_path) as worker:
        wait_until(lambda: "ready." in worker.output, "the worker to be ready")
        healthy = runner.invoke(main, ["health", "worker", "--node", worker.node])
        assert worker.terminate() == 0
    stopped = runner.invoke(main, ["health", "worker", "--node", worker.node])
    assert healthy.exit_code == 0, healthy.output
    assert f"ok      worker: {worker.node} replied to the ping" in healthy.output
    assert stopped.exit_code == 1
    assert f"FAILED  worker: TimeoutError: {worker.node} did not reply" in (
        stopped.output
    )
