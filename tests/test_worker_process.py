"""Renewals through real `celery -A worker worker` processes and a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from models import BillingCycle, CycleState, Store
from rebill.runtime import Runtime
from sandbox.server import SandboxServer
from scheduler.daemon import celery_enqueue
from scheduler.tick import tick
from tests.factories import make_store, make_subscription
from tests.fixtures.sandbox import seed_store

API_TOKEN = "worker-test-token-7d1e"
WAIT_SECONDS = 60


@contextmanager
def celery_worker(runtime: Runtime, log_path: Path) -> Iterator[subprocess.Popen]:
    env = {
        **os.environ,
        "REBILL_DATABASE_URL": runtime.settings.database_url,
        "REBILL_REDIS_URL": runtime.settings.redis_url,
        "REBILL_HTTP_READ_TIMEOUT": "5",
    }
    command = [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "--loglevel", "INFO", "--pool", "threads", "--concurrency", "4",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log_path.open("a") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def seed(runtime: Runtime, sandbox: SandboxServer, count: int) -> None:
    customer_ids = tuple(range(100, 100 + count))
    seed_store(sandbox.state, access_token=API_TOKEN, customer_ids=customer_ids)
    with runtime.sessions() as session:
        store = make_store(
            session,
            access_token=API_TOKEN,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
        )
        for customer_id in customer_ids:
            make_subscription(
                session,
                store,
                next_billing_at=datetime.now(UTC) - timedelta(minutes=1),
                customer_id=customer_id,
            )
        session.commit()


def states(runtime: Runtime) -> dict[int, str]:
    with runtime.sessions() as session:
        rows = session.execute(sa.select(BillingCycle.id, BillingCycle.state)).all()
    return dict(rows)


def wait_for(runtime: Runtime, done: set[str]) -> dict[int, str]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        current = states(runtime)
        if current and set(current.values()) <= done:
            return current
        time.sleep(0.2)
    return states(runtime)


def store_hash(runtime: Runtime) -> str:
    with runtime.sessions() as session:
        return session.scalars(sa.select(Store.store_hash)).one()


def test_worker_process_renews_every_due_subscription(
    runtime: Runtime, sandbox: SandboxServer, tmp_path: Path
) -> None:
    seed(runtime, sandbox, 12)
    enqueue = celery_enqueue(runtime)
    with celery_worker(runtime, tmp_path / "worker.log"):
        result = tick(runtime, datetime.now(UTC), enqueue)
        # Every task delivered twice, as Redis may do after a visibility timeout.
        for cycle_id in result.opened:
            enqueue(cycle_id)
        final = wait_for(runtime, {CycleState.PAID})

    assert len(final) == 12
    assert set(final.values()) == {CycleState.PAID}
    ledger = sandbox.state.ledger(store_hash(runtime))
    assert len(ledger) == 12
    assert len({entry["order_id"] for entry in ledger}) == 12


def test_worker_killed_mid_charge_never_charges_twice(
    runtime: Runtime, sandbox: SandboxServer, tmp_path: Path
) -> None:
    seed(runtime, sandbox, 1)
    hash_ = store_hash(runtime)
    # The payment is taken, then the answer stalls while the worker is killed.
    sandbox.state.inject_fault(hash_, "payments", "stall_after_charge", delay=3)
    enqueue = celery_enqueue(runtime)
    log_path = tmp_path / "worker.log"
    with celery_worker(runtime, log_path) as doomed:
        tick(runtime, datetime.now(UTC), enqueue)
        charged = wait_until(lambda: len(sandbox.state.ledger(hash_)) == 1)
        assert charged
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()

    # A new worker starts; the scheduler recovers the dead worker's claim once
    # its lease has passed and reconciles it in the same tick: the order shows
    # the payment. The unacknowledged message itself returns only after the
    # broker's visibility timeout, and would then find nothing to claim.
    with celery_worker(runtime, log_path):
        lease = timedelta(seconds=runtime.settings.charge_lease + 1)
        tick(runtime, datetime.now(UTC) + lease, enqueue)
        final = wait_for(runtime, {CycleState.UNKNOWN, CycleState.PAID})

    assert list(final.values()) == [CycleState.PAID]
    assert len(sandbox.state.ledger(hash_)) == 1


def wait_until(condition, timeout: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
