"""`rebill demo --faults`: renewals that end in every outcome class.

Like `rebill demo`, this starts the sandbox, an embedded Redis and a real
Celery worker on a fresh SQLite database. Its customers and injected faults
make charges succeed, stay pending, lose their response, hit 5xx and 429s,
decline softly and hard, trip over their order, break a store's payment setup
and carry invalid data. The stores use a retry policy with schedules in
seconds, so the retries, reconciliations and probes that take days in
production finish within about a minute. The summary explains each outcome
class and where its renewals ended.
"""

from __future__ import annotations

import os
import secrets
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from models import (
    BillingCycle,
    ChargeAttempt,
    CycleState,
    OutcomeClass,
    Store,
    utcnow,
)
from rebill.demo import (
    celery_worker,
    demo_secret_key,
    order_template,
    prepare_workdir,
    redis_for_demo,
    write_env_file,
)
from rebill.migrations import upgrade
from rebill.runtime import Runtime
from rebill.settings import Settings
from rebill.subscriptions import add_store, import_records
from sandbox.server import SandboxServer
from scheduler.daemon import celery_enqueue
from scheduler.tick import tick

MAIN_STORE = "faultdemo1"
BROKEN_STORE = "faultdemo2"
WAIT_LIMIT_SECONDS = 180
TICK_PAUSE_SECONDS = 0.5
# Seconds after which the demo settles the pending payments and gives the
# customer whose only card was declined a new card.
SETTLE_AFTER_SECONDS = 6
NEW_CARD_AFTER_SECONDS = 4
# Schedules in seconds instead of minutes and days; the billing hour is off.
DEMO_POLICY = {
    "transient_delays": ["2s", "4s", "8s", "16s"],
    "soft_decline_schedule": ["5s", "10s", "15s"],
    "unknown_schedule": ["3s", "6s", "12s", "24s"],
    "pending_schedule": ["3s", "6s", "12s", "24s"],
    "probe_delays": ["4s"],
}
FINAL_STATES = (CycleState.PAID, CycleState.FAILED, CycleState.NEEDS_REVIEW)

# Meaning of each outcome class and rebill's response to it.
EXPLANATIONS = {
    OutcomeClass.PAID: "BigCommerce took the payment (201 success): the cycle is "
    "paid and the subscription is active.",
    OutcomeClass.PENDING: "The gateway accepted the payment but settles it later "
    "(201 pending): rebill reads the order until it settles, paid or declined.",
    OutcomeClass.UNKNOWN: "The payment may have been taken (timeout, lost response, "
    "5xx, 10000, 30105): rebill reads the order and its transactions first and "
    "charges again only if no payment exists.",
    OutcomeClass.TRANSIENT: "Nothing was charged (connection failure, 429, a store "
    "API 5xx, 30100, a rejected PAT): retried after a growing wait, outside "
    "dunning.",
    OutcomeClass.SOFT_DECLINE: "The issuer declined for now (30106 insufficient "
    "funds, 30104 contact the issuer): retried on the dunning schedule at the "
    "store's billing hour, then the end-of-dunning action.",
    OutcomeClass.HARD_DECLINE: "The instrument cannot be charged (30051, 30102, "
    "30103, 30107): rebill charges another stored instrument of the customer, or "
    "waits for a new one.",
    OutcomeClass.ORDER_PROBLEM: "The order was not payable (30003, 30004, 30101): "
    "rebill reads it (a paid order is paid), creates it again once, then asks for "
    "review.",
    OutcomeClass.MERCHANT_CONFIG: "The store's payment setup is broken (30000 to "
    "30002, 401 or 403 from the store API): billing pauses for the whole store, "
    "one renewal probes it, and no customer's dunning is used.",
    OutcomeClass.OUR_DATA: "BigCommerce rejected rebill's request as invalid "
    "(10001, 30050, other 4xx): the cycle waits in review.",
    OutcomeClass.NOT_CHARGED: "The attempt ended before any payment was sent (no "
    "usable instrument, a rate-limit wait, a paused subscription).",
}


@dataclass(frozen=True)
class Customer:
    """A demo customer: its store, instruments and how late its renewal is."""

    store: str
    label: str
    instruments: tuple[dict[str, Any], ...] = ({"is_default": True},)
    days_late: float = 0.0


def demo_customers() -> list[Customer]:
    card = {"is_default": True}
    paypal = {"kind": "stored_paypal_account"}
    customers = [Customer(MAIN_STORE, "pays", (card, paypal)) for _ in range(20)]
    customers += [
        Customer(MAIN_STORE, "pending", ({"is_default": True, "behavior": "pending"},))
        for _ in range(3)
    ]
    customers += [
        Customer(MAIN_STORE, "insufficient funds", ({**card, "behavior": 30106},)),
        Customer(MAIN_STORE, "contact issuer", ({**card, "behavior": 30104},)),
        Customer(
            MAIN_STORE,
            "PayPal revoked, card works",
            ({**paypal, "is_default": True, "behavior": 30107}, {"last_4": "1881"}),
        ),
        Customer(MAIN_STORE, "card declined, new card", ({**card, "behavior": 30102},)),
        Customer(MAIN_STORE, "card expired", ({**card, "expiry_year": 2020},)),
        Customer(MAIN_STORE, "invalid data", ({**card, "behavior": 10001},)),
        Customer(MAIN_STORE, "duplicate", ({**card, "behavior": 30105},)),
        Customer(MAIN_STORE, "five days late", (card,), days_late=5),
    ]
    customers += [Customer(BROKEN_STORE, "broken store", (card,)) for _ in range(3)]
    return customers


def inject_faults(sandbox: SandboxServer) -> None:
    """Queue the faults that the first renewals of each store run into."""
    state = sandbox.state
    state.inject_fault(MAIN_STORE, "payments", "drop_after_charge", count=2)
    state.inject_fault(MAIN_STORE, "payments", "server_error", status=502)
    state.inject_fault(MAIN_STORE, "payments", "rate_limit_bare")
    state.inject_fault(MAIN_STORE, "payments", "error", code=30004)
    state.inject_fault(MAIN_STORE, "orders", "server_error", count=2)
    state.inject_fault(BROKEN_STORE, "payments", "error", code=30000)


def run_fault_demo(*, workdir: Path) -> int:
    """Run the fault demo and return the process exit status."""
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
                "REBILL_HTTP_READ_TIMEOUT": "2",
                "REBILL_REQUEUE_AFTER": "10",
            }
        )
        runtime = Runtime.from_settings(settings)
        upgrade(database_url)
        customers = seed(runtime, sandbox)
        inject_faults(sandbox)
        click.echo(f"sandbox at {sandbox.url}, database {database_url}")
        with celery_worker(settings, workdir / "worker.log"):
            finished = run(runtime, sandbox, customers, started)
        click.echo(summary(runtime, sandbox, time.monotonic() - started, workdir))
        doubled = orders_charged_twice(sandbox)
        runtime.close()
    return 0 if finished and doubled == 0 else 1


def seed(runtime: Runtime, sandbox: SandboxServer) -> dict[int, Customer]:
    """Add both stores and every demo customer; return customers by id."""
    tokens = {store: secrets.token_hex(16) for store in (MAIN_STORE, BROKEN_STORE)}
    with runtime.sessions() as session:
        for store_hash, token in tokens.items():
            sandbox.state.add_store(store_hash, token, plan="pro")
            store = add_store(
                session,
                store_hash=store_hash,
                access_token=token,
                api_url=sandbox.api_url,
                payments_url=sandbox.payments_url,
                plan="pro",
            )
            store.retry_policy = DEMO_POLICY
            store.billing_hour = None
        session.commit()
    customers: dict[int, Customer] = {}
    records: list[tuple[str, object]] = []
    now = utcnow()
    for index, customer in enumerate(demo_customers()):
        customer_id = 2001 + index
        customers[customer_id] = customer
        sandbox.state.add_customer(customer.store, customer_id)
        for options in customer.instruments:
            sandbox.state.add_instrument(customer.store, customer_id, **options)
        due = now - timedelta(days=customer.days_late, minutes=1)
        label = f"{customer.label} ({customer_id})"
        records.append((label, record(customer, customer_id, due)))
    with runtime.sessions() as session:
        import_records(session, records, now, source="fault demo data")
        session.commit()
    return customers


def record(customer: Customer, customer_id: int, due: Any) -> dict[str, Any]:
    return {
        "store": customer.store,
        "customer_id": customer_id,
        "cron": "0 9 1 * *",
        "timezone": "UTC",
        "order_template": order_template(customer_id),
        "reference": f"fault-demo-{customer_id}",
        "first_billing_at": due.isoformat(),
    }


def run(
    runtime: Runtime,
    sandbox: SandboxServer,
    customers: dict[int, Customer],
    started: float,
) -> bool:
    """Tick until every renewal is paid, failed or in review."""
    enqueue = celery_enqueue(runtime)
    declined = new_card = False
    deadline = started + WAIT_LIMIT_SECONDS
    while time.monotonic() < deadline:
        tick(runtime, utcnow(), enqueue)
        elapsed = time.monotonic() - started
        if elapsed > SETTLE_AFTER_SECONDS:
            declined = settle_pending(sandbox, decline_one=not declined) or declined
        if not new_card and elapsed > NEW_CARD_AFTER_SECONDS:
            new_card = give_new_card(sandbox, customers)
        if declined and unfinished(runtime) == 0:
            return True
        time.sleep(TICK_PAUSE_SECONDS)
    click.echo(f"some renewals did not finish within {WAIT_LIMIT_SECONDS} s", err=True)
    return False


def settle_pending(sandbox: SandboxServer, *, decline_one: bool) -> bool:
    """Settle the pending payments as paid, one as declined if `decline_one`.

    Returns True when it declined one. The declined renewal gets a new order
    that pays on a later call.
    """
    pending = [
        order["id"]
        for order in sandbox.state.orders(MAIN_STORE)
        if order["payment_status"] == "pending"
    ]
    if not pending:
        return False
    declined = pending.pop() if decline_one else None
    for order_id in pending:
        sandbox.state.settle_pending(MAIN_STORE, order_id, "success")
    if declined is None:
        return False
    sandbox.state.settle_pending(MAIN_STORE, declined, "declined")
    return True


def give_new_card(sandbox: SandboxServer, customers: dict[int, Customer]) -> bool:
    for customer_id, customer in customers.items():
        if customer.label == "card declined, new card":
            sandbox.state.add_instrument(MAIN_STORE, customer_id, last_4="3333")
    return True


def unfinished(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(BillingCycle)
                .where(BillingCycle.state.not_in(FINAL_STATES))
            )
            or 0
        )


def summary(
    runtime: Runtime, sandbox: SandboxServer, elapsed: float, workdir: Path
) -> str:
    """Describe each outcome class, how often it came and how its cycles ended."""
    with runtime.sessions() as session:
        cycles = {cycle.id: cycle for cycle in session.scalars(sa.select(BillingCycle))}
        attempts = list(session.scalars(sa.select(ChargeAttempt)))
        paused = session.scalars(
            sa.select(Store.store_hash).where(Store.billing_paused.is_(True))
        ).all()
    lines = [
        "",
        f"rebill demo --faults: {len(cycles)} renewal(s), {len(attempts)} charge "
        f"attempt(s) in {elapsed:.1f} s",
        "",
        "Outcome classes: attempts that ended in each, and where their renewals ended",
        *class_lines(cycles, attempts),
        "",
        *renewal_lines(cycles),
        f"Charges in the sandbox ledger: {len(sandbox.state.ledger())}, orders "
        f"charged twice: {orders_charged_twice(sandbox)}",
        f"Stores still paused: {', '.join(paused) or 'none'}",
        "",
        f"Worker log:  {workdir / 'worker.log'}",
        f"Settings:    {write_env_file(runtime, workdir)} (database URL and key)",
        f"Unpaid ones: set -a; . {workdir / 'demo.env'}; set +a; rebill failures",
    ]
    return "\n".join(lines)


def class_lines(
    cycles: dict[int, BillingCycle], attempts: list[ChargeAttempt]
) -> list[str]:
    """Return two lines per outcome class: its counts, then its explanation."""
    by_class: Counter[str] = Counter(attempt.outcome for attempt in attempts)
    endings: dict[str, Counter[str]] = defaultdict(Counter)
    for cycle_id in {attempt.cycle_id for attempt in attempts}:
        for outcome in {a.outcome for a in attempts if a.cycle_id == cycle_id}:
            endings[outcome][cycles[cycle_id].state] += 1
    lines = []
    for outcome, explanation in EXPLANATIONS.items():
        ended = ", ".join(
            f"{count} {state}" for state, count in sorted(endings[outcome].items())
        )
        lines.append(
            f"  {outcome:<16} {by_class[outcome]:>3} attempt(s)  -> {ended or '-'}"
        )
        lines.append(
            textwrap.fill(
                explanation,
                88,
                initial_indent=" " * 6,
                subsequent_indent=" " * 6,
                break_on_hyphens=False,
            )
        )
    return lines


def renewal_lines(cycles: dict[int, BillingCycle]) -> list[str]:
    """Return the count of renewals by state and the reason of each unpaid one."""
    states = Counter(cycle.state for cycle in cycles.values())
    lines = ["Renewals: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
    for cycle in sorted(cycles.values(), key=lambda item: item.id):
        if cycle.state != CycleState.PAID:
            reason = cycle.review_reason or cycle.last_error_message or ""
            lines.append(f"  cycle {cycle.id} {cycle.state}: {reason}")
    return lines


def orders_charged_twice(sandbox: SandboxServer) -> int:
    per_order = Counter(
        (entry["store_hash"], entry["order_id"]) for entry in sandbox.state.ledger()
    )
    return sum(1 for count in per_order.values() if count > 1)
