"""`rebill demo`: renew subscriptions end to end on this machine alone.

Starts the sandbox, an embedded Redis (unless REBILL_REDIS_URL is set) and a
real Celery worker process, imports subscriptions into a fresh SQLite database,
runs scheduler ticks until every renewal has finished and prints a summary.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import click
import sqlalchemy as sa

from models import BillingCycle, CycleState, utcnow
from rebill.encryption import generate_key
from rebill.errors import ConfigurationError
from rebill.migrations import upgrade
from rebill.redis_server import EmbeddedRedis, EmbeddedRedisUnavailable
from rebill.runtime import Runtime
from rebill.settings import Settings
from rebill.subscriptions import add_store, import_records
from sandbox.server import SandboxServer
from scheduler.daemon import celery_enqueue
from scheduler.tick import tick

logger = logging.getLogger(__name__)

STORE_HASH = "demo1store"
# Store API requests per 30 s of the demo's store. An enterprise plan's quota is
# set per store; this one lets 200 renewals (3 requests each) finish without a
# wait. On a Pro plan (450) the limiter would make the demo last over 30 s.
DEMO_API_QUOTA = 3000
WAIT_LIMIT_SECONDS = 600
# A renewal waits for a worker when it is in one of these states, or when it
# is RETRY_SCHEDULED and its next attempt is due. The others wait for time (a
# retry, a reconcile or an instrument check tomorrow) or for an operator.
WORKER_STATES = (CycleState.DUE, CycleState.ORDER_CREATED, CycleState.CHARGING)


@dataclass
class DemoCustomers:
    """Demo customer ids, grouped by the stored instruments they were given."""

    paying: list[int] = field(default_factory=list)
    declining: list[int] = field(default_factory=list)
    expired_only: list[int] = field(default_factory=list)

    def all(self) -> list[int]:
        return sorted(self.paying + self.declining + self.expired_only)


def run_demo(*, count: int, workdir: Path) -> int:
    """Run the demo and return the process exit status."""
    prepare_workdir(workdir)
    database_url = f"sqlite:///{(workdir / 'rebill.db').resolve()}"
    started = time.monotonic()
    with redis_for_demo() as redis_url, SandboxServer() as sandbox:
        settings = Settings.from_env(
            {
                **os.environ,
                "REBILL_DATABASE_URL": database_url,
                "REBILL_REDIS_URL": redis_url,
                "REBILL_SECRET_KEY": demo_secret_key(),
            }
        )
        runtime = Runtime.from_settings(settings)
        upgrade(database_url)
        token = secrets.token_hex(16)
        customers = seed_sandbox(sandbox, count, token)
        seed_database(runtime, sandbox, customers, token)
        click.echo(
            f"sandbox at {sandbox.url}, Redis at {redis_url}, database {database_url}"
        )
        with celery_worker(settings, workdir / "worker.log"):
            finished = run_until_settled(runtime)
        elapsed = time.monotonic() - started
        print_summary(runtime, sandbox, elapsed, workdir)
        runtime.close()
    return 0 if finished else 1


def demo_secret_key() -> str:
    """Return REBILL_SECRET_KEY, or a new key for the demo's fresh database."""
    return os.environ.get("REBILL_SECRET_KEY") or generate_key()


# Settings that let later rebill commands open the demo's database.
ENV_FILE = "demo.env"
# Marks a folder as made by the demo, so a later run may empty it.
WORKDIR_MARKER = ".rebill-demo"


def prepare_workdir(workdir: Path) -> None:
    """Create an empty work folder, emptying only one that an earlier demo made.

    Raises ConfigurationError for an existing folder without the demo's marker
    file, so a mistyped --workdir can never delete someone's files.
    """
    if workdir.exists():
        if not (workdir / WORKDIR_MARKER).is_file():
            if not workdir.is_dir() or any(workdir.iterdir()):
                raise ConfigurationError(
                    f"--workdir {workdir} exists and was not made by rebill demo; "
                    "choose a new or empty folder"
                )
        else:
            shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / WORKDIR_MARKER).write_text(
        "made by rebill demo; emptied by its next run\n"
    )


@contextmanager
def redis_for_demo() -> Iterator[str]:
    configured = os.environ.get("REBILL_REDIS_URL")
    if configured:
        yield configured
        return
    try:
        server = EmbeddedRedis()
        server.start()
    except EmbeddedRedisUnavailable as error:
        raise ConfigurationError(
            f"the embedded Redis could not start: {error}. Point the demo at a "
            "Redis instead: REBILL_REDIS_URL=redis://127.0.0.1:6379/0 rebill demo"
        ) from None
    try:
        yield server.url
    finally:
        server.stop()


def seed_sandbox(sandbox: SandboxServer, count: int, token: str) -> DemoCustomers:
    """Create the demo store and one customer per subscription.

    Most customers have a default Visa card and a PayPal account. Every 25th
    card is declined for insufficient funds, and every 40th customer has only an
    expired card, so the summary shows failures next to payments.
    """
    state = sandbox.state
    state.add_store(
        STORE_HASH, token, plan="enterprise", api_quota=DEMO_API_QUOTA, currency="USD"
    )
    customers = DemoCustomers()
    for index in range(count):
        customer_id = 1001 + index
        state.add_customer(STORE_HASH, customer_id)
        if index % 40 == 39:
            state.add_instrument(
                STORE_HASH,
                customer_id,
                last_4="0005",
                expiry_month=9,
                expiry_year=2020,
                is_default=True,
            )
            customers.expired_only.append(customer_id)
            continue
        behavior = 30106 if index % 25 == 24 else None
        state.add_instrument(
            STORE_HASH,
            customer_id,
            brand="VISA",
            last_4="4242",
            expiry_month=12,
            expiry_year=2030,
            is_default=True,
            behavior=behavior,
        )
        state.add_instrument(
            STORE_HASH,
            customer_id,
            kind="stored_paypal_account",
            email=f"customer{customer_id}@example.com",
        )
        target = customers.declining if behavior else customers.paying
        target.append(customer_id)
    return customers


def order_template(customer_id: int) -> dict:
    """Return the order template of a demo subscription: a box and filters."""
    address = {
        "first_name": "Demo",
        "last_name": f"Customer {customer_id}",
        "company": "",
        "street_1": "500 Congress Avenue",
        "street_2": "",
        "city": "Austin",
        "state": "Texas",
        "zip": "78701",
        "country": "United States",
        "country_iso2": "US",
        "email": f"customer{customer_id}@example.com",
    }
    return {
        "billing_address": address,
        "shipping_addresses": [{**address, "phone": ""}],
        "products": [
            {
                "name": "Coffee subscription box",
                "quantity": 1,
                "price_inc_tax": "21.65",
                "price_ex_tax": "20.00",
            },
            {
                "name": "Filter papers",
                "quantity": 2,
                "price_inc_tax": "4.33",
                "price_ex_tax": "4.00",
            },
        ],
    }


def seed_database(
    runtime: Runtime, sandbox: SandboxServer, customers: DemoCustomers, token: str
) -> None:
    with runtime.sessions() as session:
        add_store(
            session,
            store_hash=STORE_HASH,
            access_token=token,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
            name="Demo coffee store",
            plan="enterprise",
            api_quota=DEMO_API_QUOTA,
            currency="USD",
        )
        session.commit()
    due = (utcnow() - timedelta(minutes=1)).isoformat()
    records: list[tuple[str, object]] = [
        (
            f"demo subscription {customer_id}",
            {
                "store": STORE_HASH,
                "customer_id": customer_id,
                "cron": "0 9 * * *",
                "timezone": "America/Chicago",
                "order_template": order_template(customer_id),
                "reference": f"demo-{customer_id}",
                "first_billing_at": due,
            },
        )
        for customer_id in customers.all()
    ]
    with runtime.sessions() as session:
        import_records(session, records, utcnow(), source="demo data")
        session.commit()


@contextmanager
def celery_worker(settings: Settings, log_path: Path) -> Iterator[None]:
    """Run `celery -A worker worker` as a child process with the demo's settings."""
    env = {
        **os.environ,
        "REBILL_DATABASE_URL": settings.database_url,
        "REBILL_REDIS_URL": settings.redis_url,
        "REBILL_SECRET_KEY": settings.secret_key,
    }
    command = [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "--loglevel", "INFO", "--pool", "threads",
        "--concurrency", str(settings.worker_concurrency),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_until_settled(runtime: Runtime) -> bool:
    """Tick until no renewal waits for a worker; False if the time limit passed."""
    enqueue = celery_enqueue(runtime)
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while time.monotonic() < deadline:
        tick(runtime, utcnow(), enqueue)
        if unsettled(runtime) == 0:
            return True
        time.sleep(1)
    click.echo(f"some renewals did not finish within {WAIT_LIMIT_SECONDS} s", err=True)
    return False


def unsettled(runtime: Runtime) -> int:
    """Count the renewals that wait for a worker now."""
    due_retry = sa.and_(
        BillingCycle.state == CycleState.RETRY_SCHEDULED,
        BillingCycle.next_attempt_at <= utcnow(),
    )
    with runtime.sessions() as session:
        return (
            session.scalar(
                sa.select(sa.func.count())
                .select_from(BillingCycle)
                .where(sa.or_(BillingCycle.state.in_(WORKER_STATES), due_retry))
            )
            or 0
        )


def write_env_file(runtime: Runtime, workdir: Path) -> Path:
    """Write the demo database's settings, readable by the owner only."""
    path = workdir / ENV_FILE
    path.touch(mode=0o600)
    path.write_text(
        f"REBILL_DATABASE_URL={runtime.settings.database_url}\n"
        f"REBILL_SECRET_KEY={runtime.settings.secret_key}\n"
    )
    return path


def print_summary(
    runtime: Runtime, sandbox: SandboxServer, elapsed: float, workdir: Path
) -> None:
    with runtime.sessions() as session:
        cycles = session.scalars(sa.select(BillingCycle)).all()
    states = Counter(cycle.state for cycle in cycles)
    reasons = Counter(
        (cycle.last_error_code, cycle.last_error_message)
        for cycle in cycles
        if cycle.state != CycleState.PAID
    )
    ledger = sandbox.state.ledger(STORE_HASH)
    charges_per_order = Counter(entry["order_id"] for entry in ledger)
    doubled = sum(1 for n in charges_per_order.values() if n > 1)
    orders = sandbox.state.orders(STORE_HASH)
    lines = [
        "",
        f"rebill demo: {len(cycles)} renewal(s) in {elapsed:.1f} s",
        f"  paid:             {states.get(CycleState.PAID, 0)}",
    ]
    for state, number in sorted(states.items()):
        if state != CycleState.PAID:
            lines.append(f"  {state + ':':<17} {number}")
    for (code, message), number in reasons.most_common():
        label = f"code {code}" if code is not None else "no code"
        lines.append(f"    {number:>4} x {label}: {message}")
    lines += [
        f"  orders created in the sandbox: {len(orders)}",
        f"  charges in the sandbox ledger: {len(ledger)} "
        f"({sum(entry['amount'] for entry in ledger) / 100:.2f} USD), "
        f"orders charged twice: {doubled}",
        "",
        "Where to look next:",
        f"  worker log:   {workdir / 'worker.log'}",
        f"  database:     {runtime.settings.database_url}",
        f"  settings:     {write_env_file(runtime, workdir)} (database URL and the "
        "demo's encryption key)",
        f"  unpaid ones:  set -a; . {workdir / ENV_FILE}; set +a; rebill failures",
    ]
    click.echo("\n".join(lines))
    with suppress(OSError):
        (workdir / "summary.json").write_text(
            json.dumps({"states": dict(states), "ledger": len(ledger)}, indent=2)
        )
