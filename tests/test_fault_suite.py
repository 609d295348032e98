"""Renew 300 subscriptions through real Celery workers while faults strike.

Two `celery -A worker worker` processes renew against the sandbox, on
PostgreSQL, while this test drives the scheduler tick and injects faults at
random: responses dropped after the charge, 5xx, responses slower than the
read timeout, the same task delivered twice, a worker killed with SIGKILL while
a payment is in flight, and Redis restarted. At the end every cycle must be
paid, failed or in review with a reason, no order and no cycle may hold more
than one successful charge, and no cycle may be lost.

The random seed is printed; REBILL_FAULT_SEED=<seed> replays the same fault
plan (the timing of threads and processes still varies between runs).
"""

from __future__ import annotations

import os
import random
import re
import secrets
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from models import (
    BillingCycle,
    ChargeAttempt,
    CycleState,
    OutcomeClass,
    Store,
    Subscription,
    utcnow,
)
from rebill.health import probe_worker
from rebill.migrations import upgrade
from rebill.redis_server import EmbeddedRedis
from rebill.runtime import Runtime
from rebill.settings import Settings
from sandbox.server import SandboxServer
from scheduler.daemon import celery_enqueue
from scheduler.tick import tick
from tests.factories import make_subscription
from tests.fixtures.runtime import TEST_SECRET_KEY
from tests.fixtures.services import create_postgres_database, drop_postgres_database
from tests.processes import RoleProcess, role_environment, running, worker_command

SUBSCRIPTIONS = 300
STORES = ("fault1store", "fault2store", "fault3store")
WORKERS = 2
WORKER_THREADS = 4
# Subscriptions fall due over this many seconds, so faults strike mid-flow.
DUE_SPREAD_SECONDS = 30
CHAOS_SECONDS = 40
# The whole run stops here; a healthy run settles well before.
RUN_LIMIT_SECONDS = 240
TICK_PAUSE_SECONDS = 0.3
HEALTH_CHECK_SECONDS = 3.0
# A worker younger than this is not pinged: it may still be starting.
WORKER_BOOT_SECONDS = 15.0
READ_TIMEOUT_SECONDS = 1.0
# Faults that delay a response outlast the read timeout.
SLOW_SECONDS = 2.5
FINAL_STATES = (CycleState.PAID, CycleState.FAILED, CycleState.NEEDS_REVIEW)
# Seconds-long schedules so that reconciliation and retries finish in the run.
FAST_POLICY = {
    "transient_delays": ["1s", "2s", "3s", "5s", "8s", "13s", "21s", "30s"],
    "unknown_schedule": ["1s", "3s", "6s", "10s", "20s", "40s", "80s"],
    "pending_schedule": ["2s", "5s", "10s"],
    "probe_delays": ["2s"],
}
CYCLE_TAG = re.compile(r"^rebill-cycle-(\d+)(?:-\d+)?$")


@dataclass
class Chaos:
    """The fault plan's random source and a record of what it did."""

    rng: random.Random
    sandbox: SandboxServer
    runtime: Runtime
    redis: EmbeddedRedis
    enqueue: Callable[[int], None]
    workers: WorkerPool
    done: Counter[str] = field(default_factory=Counter)

    def store(self) -> str:
        return self.rng.choice(STORES)

    def inject(self, endpoint: str, kind: str, **options: object) -> None:
        self.sandbox.state.inject_fault(self.store(), endpoint, kind, **options)
        self.done[f"{endpoint} {kind}"] += 1

    def drop_after_charge(self) -> None:
        self.inject("payments", "drop_after_charge", count=self.rng.randint(1, 4))

    def stall_after_charge(self) -> None:
        self.inject("payments", "stall_after_charge", delay=SLOW_SECONDS, count=2)

    def payment_server_error(self) -> None:
        status = self.rng.choice((500, 502, 503))
        self.inject("payments", "server_error", status=status, count=2)

    def slow_payment(self) -> None:
        self.inject("payments", "slow", delay=SLOW_SECONDS, count=2)

    def store_api_server_error(self) -> None:
        endpoint = self.rng.choice(("orders", "methods", "access_tokens"))
        self.inject(endpoint, "server_error", count=self.rng.randint(1, 3))

    def slow_order(self) -> None:
        self.inject("orders", "slow", delay=SLOW_SECONDS, count=2)

    def duplicate_delivery(self) -> None:
        """Send the renew task of some cycles twice more."""
        with self.runtime.sessions() as session:
            ids = list(session.scalars(sa.select(BillingCycle.id)))
        for cycle_id in self.rng.sample(ids, min(10, len(ids))):
            self.enqueue(cycle_id)
            self.enqueue(cycle_id)
        self.done["same task delivered twice"] += 1

    def kill_worker_mid_charge(self) -> None:
        """SIGKILL the workers while a payment is in flight, then start new ones.

        Every worker is killed, so the one sending the payment is among them.
        """
        for store_hash in STORES:
            self.sandbox.state.inject_fault(
                store_hash, "payments", "stall_after_charge", delay=SLOW_SECONDS
            )
        in_flight = wait_for(lambda: payment_in_flight(self.runtime), seconds=8)
        for _ in range(WORKERS):
            self.workers.kill(0)
        if in_flight:
            self.done["workers killed mid-charge"] += 1
        else:
            self.done["workers killed, no payment in flight seen"] += 1

    def restart_redis(self) -> None:
        self.redis.restart()
        self.done["Redis restarted"] += 1


class WorkerPool:
    """The Celery worker processes of the run; a killed one is replaced.

    Like a container orchestrator running `rebill health worker`, the pool
    replaces a worker that fails two pings in a row. With Celery 5.7 and kombu
    5.7 a worker sometimes stops consuming after a Redis restart, because kombu
    raises while it closes the lost connection. Such a worker ignores pings.
    """

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = replace(settings, health_timeout=1.0)
        self.env = role_environment(
            settings, REBILL_WORKER_CONCURRENCY=str(WORKER_THREADS)
        )
        self.folder = folder
        self.processes: list[RoleProcess] = []
        self.contexts: list = []
        self.started_at: dict[str, float] = {}
        self.failed_pings: Counter[str] = Counter()
        self.last_check = 0.0

    def start(self) -> None:
        node = f"fault-{uuid.uuid4().hex[:8]}@localhost"
        command = worker_command(node, concurrency=WORKER_THREADS)
        context = running(command, self.env, self.folder / f"{node}.log", node)
        self.contexts.append(context)
        self.processes.append(context.__enter__())
        self.started_at[node] = time.monotonic()

    def kill(self, index: int) -> None:
        victim = self.processes.pop(index)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        self.start()

    def replace_unhealthy(self) -> int:
        """Ping each worker past its start-up; replace one failing twice in a row."""
        now = time.monotonic()
        if now - self.last_check < HEALTH_CHECK_SECONDS:
            return 0
        self.last_check = now
        replaced = 0
        for role in list(self.processes):
            if now - self.started_at[role.node] < WORKER_BOOT_SECONDS:
                continue
            if probe_worker(self.settings, role.node).ok:
                self.failed_pings[role.node] = 0
                continue
            self.failed_pings[role.node] += 1
            if self.failed_pings[role.node] >= 2:
                self.kill(self.processes.index(role))
                replaced += 1
        return replaced

    def stop(self) -> None:
        for role in self.processes:
            if role.process.poll() is None:
                role.process.send_signal(signal.SIGTERM)
        for context in self.contexts:
            context.__exit__(None, None, None)


def wait_for(condition: Callable[[], bool], *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def payment_in_flight(runtime: Runtime) -> bool:
    with runtime.sessions() as session:
        found = session.scalar(
            sa.select(ChargeAttempt.id)
            .where(
                ChargeAttempt.outcome == OutcomeClass.IN_FLIGHT,
                ChargeAttempt.payment_sent_at.is_not(None),
            )
            .limit(1)
        )
    return found is not None


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine | None) -> Iterator[str]:
    """A migrated PostgreSQL database: SQLite would serialise the workers."""
    if postgres_admin is None:
        message = "the fault suite needs PostgreSQL; SQLite would serialise workers"
        if os.environ.get("REBILL_TEST_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    url = create_postgres_database(postgres_admin)
    upgrade(url)
    yield url
    drop_postgres_database(postgres_admin, url)


@pytest.fixture
def fault_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test alone, so its restarts never reach other tests."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def fault_runtime(postgres_url: str, fault_redis: EmbeddedRedis) -> Iterator[Runtime]:
    settings = replace(
        Settings.from_env({}),
        database_url=postgres_url,
        redis_url=fault_redis.url,
        secret_key=TEST_SECRET_KEY,
        http_read_timeout=READ_TIMEOUT_SECONDS,
        charge_lease=4.0,
        requeue_after=6.0,
        reconcile_batch_size=500,
    )
    runtime = Runtime.from_settings(settings)
    yield runtime
    runtime.close()


def seed(runtime: Runtime, sandbox: SandboxServer, start: datetime) -> None:
    """Add the stores and one customer with a card and a PayPal account each."""
    with runtime.sessions() as session:
        stores = []
        for store_hash in STORES:
            token = secrets.token_hex(16)
            sandbox.state.add_store(
                store_hash, token, plan="enterprise", api_quota=20_000
            )
            store = Store(
                store_hash=store_hash,
                access_token=token,
                api_url=sandbox.api_url,
                payments_url=sandbox.payments_url,
                plan="enterprise",
                api_quota=20_000,
                retry_policy=FAST_POLICY,
            )
            session.add(store)
            stores.append(store)
        session.flush()
        for store in stores:
            store.billing_hour = None
        for index in range(SUBSCRIPTIONS):
            store = stores[index % len(stores)]
            customer_id = 1000 + index
            sandbox.state.add_customer(store.store_hash, customer_id)
            sandbox.state.add_instrument(store.store_hash, customer_id, is_default=True)
            sandbox.state.add_instrument(
                store.store_hash, customer_id, kind="stored_paypal_account"
            )
            due = start + timedelta(seconds=DUE_SPREAD_SECONDS * index / SUBSCRIPTIONS)
            make_subscription(
                session,
                store,
                next_billing_at=due,
                customer_id=customer_id,
                cron="0 9 1 1 *",
            )
        session.commit()


def run_tick(runtime: Runtime, enqueue: Callable[[int], None]) -> None:
    """Tick like the scheduler daemon: an error is survived until the next tick."""
    try:
        tick(runtime, utcnow(), enqueue)
    except Exception as error:  # noqa: BLE001 - Redis may be restarting
        print(f"tick failed ({type(error).__name__}: {error}); ticking again")


def unsettled(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(BillingCycle)
                .where(BillingCycle.state.not_in(FINAL_STATES))
            )
            or 0
        )


def chaos_plan(rng: random.Random) -> list[tuple[float, str]]:
    """Return (seconds after start, action) pairs, each kind at least once."""
    actions = [
        "drop_after_charge",
        "drop_after_charge",
        "drop_after_charge",
        "stall_after_charge",
        "payment_server_error",
        "payment_server_error",
        "slow_payment",
        "store_api_server_error",
        "store_api_server_error",
        "slow_order",
        "duplicate_delivery",
        "duplicate_delivery",
        "kill_worker_mid_charge",
        "kill_worker_mid_charge",
        "restart_redis",
    ]
    actions += rng.choices(actions, k=10)
    return sorted((rng.uniform(1, CHAOS_SECONDS), action) for action in actions)


def test_renewals_survive_faults(
    fault_runtime: Runtime, fault_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    seed_value = int(os.environ.get("REBILL_FAULT_SEED") or secrets.randbelow(10**9))
    print(f"fault suite seed: {seed_value} (replay: REBILL_FAULT_SEED={seed_value})")
    rng = random.Random(seed_value)
    runtime = fault_runtime
    with SandboxServer() as sandbox:
        started = time.monotonic()
        seed(runtime, sandbox, utcnow())
        enqueue = celery_enqueue(runtime)
        workers = WorkerPool(runtime.settings, tmp_path)
        chaos = Chaos(rng, sandbox, runtime, fault_redis, enqueue, workers)
        try:
            for _ in range(WORKERS):
                workers.start()
            plan = chaos_plan(rng)
            while time.monotonic() - started < RUN_LIMIT_SECONDS:
                run_tick(runtime, enqueue)
                chaos.done["unhealthy workers replaced"] += workers.replace_unhealthy()
                elapsed = time.monotonic() - started
                while plan and plan[0][0] <= elapsed:
                    getattr(chaos, plan.pop(0)[1])()
                if not plan and elapsed > DUE_SPREAD_SECONDS and not unsettled(runtime):
                    break
                time.sleep(TICK_PAUSE_SECONDS)
        finally:
            workers.stop()
        print(f"faults: {dict(chaos.done)}; worker logs in {tmp_path}")
        print(f"settled in {time.monotonic() - started:.1f} s")
        check_outcome(runtime, sandbox, chaos)


def check_outcome(runtime: Runtime, sandbox: SandboxServer, chaos: Chaos) -> None:
    with runtime.sessions() as session:
        cycles = list(session.scalars(sa.select(BillingCycle)))
        subscriptions = session.scalar(sa.select(sa.func.count(Subscription.id)))
        outcomes = Counter(session.scalars(sa.select(ChargeAttempt.outcome)))
    states = Counter(cycle.state for cycle in cycles)
    print(f"cycles by state: {dict(states)}")
    print(f"attempts by outcome: {dict(outcomes)}")

    assert subscriptions == SUBSCRIPTIONS
    assert len(cycles) == SUBSCRIPTIONS
    assert len({cycle.subscription_id for cycle in cycles}) == SUBSCRIPTIONS
    unfinished = [
        f"cycle {c.id} {c.state} next {c.next_attempt_at}: {c.last_error_message}"
        for c in cycles
        if c.state not in FINAL_STATES
    ]
    assert unfinished == []
    for cycle in cycles:
        if cycle.state == CycleState.NEEDS_REVIEW:
            assert cycle.review_reason, f"cycle {cycle.id} is in review without reason"
        if cycle.state == CycleState.FAILED:
            assert cycle.last_error_message, f"cycle {cycle.id} failed without reason"

    ledger = [entry for store in STORES for entry in sandbox.state.ledger(store)]
    per_order = Counter((entry["store_hash"], entry["order_id"]) for entry in ledger)
    charged_twice = [order for order, count in per_order.items() if count > 1]
    assert charged_twice == []

    per_cycle = charges_per_cycle(sandbox, per_order)
    cycles_charged_twice = [
        f"cycle {cycle_id}: {count} charges"
        for cycle_id, count in per_cycle.items()
        if count > 1
    ]
    assert cycles_charged_twice == []
    for cycle in cycles:
        charges = per_cycle.get(cycle.id, 0)
        if cycle.state == CycleState.PAID:
            assert charges == 1, f"cycle {cycle.id} is paid with {charges} charge(s)"
        elif cycle.state == CycleState.FAILED:
            assert charges == 0, f"cycle {cycle.id} failed but was charged"
    assert states[CycleState.PAID] >= SUBSCRIPTIONS * 0.9
    injected = sum(
        count
        for name, count in chaos.done.items()
        if name != "unhealthy workers replaced"
    )
    assert injected >= 25


def charges_per_cycle(
    sandbox: SandboxServer, per_order: Counter[tuple[str, int]]
) -> Counter[int]:
    """Sum the ledger charges of every order a cycle created, by cycle id."""
    result: Counter[int] = Counter()
    for store in STORES:
        for order in sandbox.state.orders(store):
            match = CYCLE_TAG.match(order["external_order_id"] or "")
            assert match, f"order {order['id']} of {store} has no cycle tag"
            result[int(match.group(1))] += per_order.get((store, order["id"]), 0)
    return result
