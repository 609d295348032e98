"""End-to-end benchmark: renew N subscriptions across stores on different plans.

    python -m bench.end_to_end [--subscriptions 2000] [--workers 4] [--threads 8]

Starts the sandbox (adding `--latency` to every response, 150 ms by default),
a Redis, a fresh database (PostgreSQL at BENCH_POSTGRES_URL when it accepts
connections, else SQLite) and `--workers` real Celery worker processes. Then it
runs scheduler ticks until every renewal has settled. The stores are on
different plans, and other apps use the share of each store's quota that rebill
leaves for them, so each store's quota is the physical limit. Subscriptions are
spread across the stores in proportion to their quota. Each remembers the card
that paid its last renewal, as rebill records it, so the run measures repeat
renewals; `--first-renewals` measures subscriptions that never paid instead.

It prints the total time next to the floor that the quotas set, and their
ratio. A store's floor is its renewals times 2 store API requests (create the
order and mint a PAT, the least a renewal needs) over the requests per second
its quota leaves rebill, or its payments at 12.5 per second if that is slower.
The floor of the run is the slowest store's. It also prints store API requests
per paid renewal (counted by the sandbox, 429s included), 429s, and the peak
resident memory of a worker.

For comparison it then runs the same renewals as a plain sequential loop, the
way a merchant would write it by hand: one request after another, sleeping out
a 429 before trying again, with no database. `--sequential` caps how many of
the renewals the loop does (all by default).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy as sa

from bench.common import machine_line, order_body, print_table, redis_url, sandbox
from models import FINAL_STATES, BillingCycle, CycleState, Subscription, utcnow
from rebill.encryption import generate_key
from rebill.limiter import API, API_WINDOW_SECONDS, PAYMENTS, LimiterStats
from rebill.migrations import upgrade
from rebill.runtime import Runtime
from rebill.settings import Settings
from rebill.subscriptions import add_store, import_records
from sandbox.server import SandboxServer
from scheduler.daemon import celery_enqueue
from scheduler.tick import tick

POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
API_TOKEN = "bench-end-to-end-token"
PAYMENTS_PER_SECOND = 12.5
# Store API requests a paid renewal needs at the least: create order, mint PAT.
MIN_API_REQUESTS = 2
SETTLED_STATES = (*FINAL_STATES, CycleState.NEEDS_REVIEW, CycleState.UNKNOWN)
WAIT_LIMIT_SECONDS = 3600


@dataclass(frozen=True)
class BenchStore:
    store_hash: str
    plan: str
    quota: int  # store API requests per 30 s


STORES = (
    BenchStore("benchstandard", "standard", 150),
    BenchStore("benchplus", "plus", 150),
    BenchStore("benchpro", "pro", 450),
    BenchStore("benchenterprise", "enterprise", 600),
)


@dataclass
class Plan:
    """The customers of each store that get a subscription."""

    customers: dict[str, list[int]]

    @classmethod
    def spread(cls, total: int) -> Plan:
        """Give each store a share of `total` in proportion to its quota."""
        quota = sum(store.quota for store in STORES)
        counts = [total * store.quota // quota for store in STORES]
        counts[-1] += total - sum(counts)
        customers = {}
        first = 1
        for store, count in zip(STORES, counts, strict=True):
            customers[store.store_hash] = list(range(first, first + count))
            first += count
        return cls(customers)

    def limited(self, count: int) -> Plan:
        """Return a plan with `count` subscriptions, taken round-robin by store."""
        taken: dict[str, list[int]] = {store.store_hash: [] for store in STORES}
        queues = [list(self.customers[store.store_hash]) for store in STORES]
        while count > 0 and any(queues):
            for store, queue in zip(STORES, queues, strict=True):
                if queue and count > 0:
                    taken[store.store_hash].append(queue.pop(0))
                    count -= 1
        return Plan(taken)


def floor_seconds(store: BenchStore, renewals: int, share: float) -> float:
    """Return the least time the store's limits allow for `renewals` renewals."""
    available = store.quota - math.floor(store.quota * share)
    api = renewals * MIN_API_REQUESTS / available * API_WINDOW_SECONDS
    return max(api, renewals / PAYMENTS_PER_SECOND)


def seed_sandbox(server: SandboxServer, plan: Plan, share: float) -> dict[int, str]:
    """Add the stores and a customer with a default card per subscription.

    Returns each customer's card token.
    """
    state = server.state
    tokens = {}
    for store in STORES:
        state.add_store(
            store.store_hash,
            API_TOKEN,
            plan=store.plan,
            api_quota=store.quota if store.plan == "enterprise" else None,
            other_apps_share=share,
        )
        for customer_id in plan.customers[store.store_hash]:
            state.add_customer(store.store_hash, customer_id)
            tokens[customer_id] = state.add_instrument(
                store.store_hash, customer_id, kind="stored_card", is_default=True
            )
    return tokens


def seed_database(
    runtime: Runtime,
    server: SandboxServer,
    plan: Plan,
    remembered: dict[int, str] | None,
) -> None:
    """Add the stores and one subscription per customer, due a minute ago.

    With `remembered` (card tokens by customer), each subscription remembers
    its card as a paid renewal leaves it, so the renewals are repeat renewals.
    """
    due = (utcnow() - timedelta(minutes=1)).isoformat()
    with runtime.sessions() as session:
        for store in STORES:
            add_store(
                session,
                store_hash=store.store_hash,
                access_token=API_TOKEN,
                api_url=server.api_url,
                payments_url=server.payments_url,
                plan=store.plan,
                api_quota=store.quota if store.plan == "enterprise" else None,
            )
        session.commit()
    records: list[tuple[str, object]] = []
    for store_hash, customers in plan.customers.items():
        for customer_id in customers:
            template = order_body(customer_id)
            del template["status_id"], template["customer_id"]
            del template["external_order_id"]
            record = {
                "store": store_hash,
                "customer_id": customer_id,
                "cron": "0 9 1 * *",
                "timezone": "UTC",
                "order_template": template,
                "first_billing_at": due,
            }
            records.append((f"subscription {customer_id}", record))
    with runtime.sessions() as session:
        import_records(session, records, utcnow(), source="benchmark")
        session.commit()
    if remembered:
        remember_cards(runtime, remembered)


def remember_cards(runtime: Runtime, tokens: dict[int, str]) -> None:
    with runtime.sessions() as session:
        for subscription in session.scalars(sa.select(Subscription)):
            subscription.payment_method_id = "stripe.card"
            subscription.instrument_type = "stored_card"
            subscription.instrument_token = tokens[subscription.customer_id]
        session.commit()


@contextmanager
def database_url(folder: Path) -> Iterator[str]:
    """Yield a fresh PostgreSQL database, or a SQLite file when none is reachable."""
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError:
        admin.dispose()
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    name = f"rebill_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )
        admin.dispose()


def start_workers(
    settings: Settings, count: int, threads: int, folder: Path
) -> list[subprocess.Popen[bytes]]:
    environ = {
        **os.environ,
        "REBILL_DATABASE_URL": settings.database_url,
        "REBILL_REDIS_URL": settings.redis_url,
        "REBILL_SECRET_KEY": settings.secret_key,
        "REBILL_LOG_LEVEL": os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
    }
    workers = []
    for number in range(count):
        command = [
            sys.executable, "-m", "celery", "-A", "worker", "worker",
            "--pool", "threads", "--concurrency", str(threads),
            "--hostname", f"bench{number}@%h", "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        log = (folder / f"worker{number}.log").open("w")
        workers.append(subprocess.Popen(command, env=environ, stdout=log, stderr=log))
    return workers


def wait_for_workers(settings: Settings, count: int, timeout: float = 60.0) -> None:
    from worker.app import make_celery

    app = make_celery(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0) or []) >= count:
            return
    raise RuntimeError(f"fewer than {count} Celery workers started in {timeout} s")


def peak_memory_mib(process: subprocess.Popen[bytes]) -> float:
    """Return the peak resident memory (VmHWM) of a running process, in MiB."""
    with open(f"/proc/{process.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def unsettled(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        count = session.scalar(
            sa.select(sa.func.count())
            .select_from(BillingCycle)
            .where(BillingCycle.state.not_in(SETTLED_STATES))
        )
    return count or 0


def paid(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        count = session.scalar(
            sa.select(sa.func.count())
            .select_from(BillingCycle)
            .where(BillingCycle.state == CycleState.PAID)
        )
    return count or 0


def run_until_settled(runtime: Runtime, interval: float) -> float:
    """Tick until every renewal has settled; return the seconds it took."""
    enqueue = celery_enqueue(runtime)
    started = time.monotonic()
    while time.monotonic() - started < WAIT_LIMIT_SECONDS:
        tick(runtime, utcnow(), enqueue)
        if unsettled(runtime) == 0:
            return time.monotonic() - started
        time.sleep(interval)
    raise RuntimeError(f"renewals still unsettled after {WAIT_LIMIT_SECONDS} s")


@dataclass
class RebillRun:
    seconds: float
    paid: int
    api_requests: int
    api_429: int
    payments_429: int
    peak_mib: float
    limiter: dict[str, LimiterStats]
    first_payment: float  # seconds after the start
    last_payment: float
    charged_twice: int  # orders with more than one charge: must be 0


def run_rebill(plan: Plan, options: argparse.Namespace, folder: Path) -> RebillRun:
    with (
        redis_url() as url,
        sandbox(options.latency) as server,
        database_url(folder) as database,
    ):
        settings = replace(
            Settings.from_env({}),
            database_url=database,
            redis_url=url,
            secret_key=generate_key(),
            worker_concurrency=options.threads,
            log_level="WARNING",
        )
        upgrade(database)
        runtime = Runtime.from_settings(settings)
        tokens = seed_sandbox(server, plan, settings.api_other_apps_share)
        remembered = None if options.first_renewals else tokens
        seed_database(runtime, server, plan, remembered)
        print(f"rebill: {len(plan_customers(plan))} subscriptions ready", flush=True)
        workers = start_workers(settings, options.workers, options.threads, folder)
        try:
            wait_for_workers(settings, options.workers)
            started_at = datetime.now(UTC)
            seconds = run_until_settled(runtime, options.tick)
            peak = max(peak_memory_mib(worker) for worker in workers)
        finally:
            stop_workers(workers)
        state = server.state
        ledger = state.ledger()
        charged = [
            (datetime.fromisoformat(entry["charged_at"]) - started_at).total_seconds()
            for entry in ledger
        ]
        orders = Counter((entry["store_hash"], entry["order_id"]) for entry in ledger)
        run = RebillRun(
            seconds=seconds,
            paid=paid(runtime),
            api_requests=sum(state.request_counts(s)[API] for s in plan.customers),
            api_429=sum(state.rate_limited_counts(s)[API] for s in plan.customers),
            payments_429=sum(
                state.rate_limited_counts(s)[PAYMENTS] for s in plan.customers
            ),
            peak_mib=peak,
            limiter={s: runtime.limiter.stats(s) for s in plan.customers},
            first_payment=min(charged, default=0.0),
            last_payment=max(charged, default=0.0),
            charged_twice=sum(1 for count in orders.values() if count > 1),
        )
        runtime.close()
    return run


def plan_customers(plan: Plan) -> list[int]:
    return [customer for found in plan.customers.values() for customer in found]


class SequentialLoop:
    """Renewals the way a hand-written script does them: one call at a time."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.session = requests.Session()
        self.headers = {
            "X-Auth-Token": API_TOKEN,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.rate_limited = 0

    def call(self, method: str, url: str, **kwargs: object) -> requests.Response:
        """Send a request, sleeping out each 429 before sending it again."""
        while True:
            response = self.session.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]
            if response.status_code != 429:
                return response
            self.rate_limited += 1
            time.sleep(float(response.headers.get("X-Retry-After") or 1))

    def renew(self, store_hash: str, customer_id: int) -> bool:
        api = f"{self.server.api_url}/stores/{store_hash}"
        order = self.call(
            "POST",
            f"{api}/v2/orders",
            json=order_body(customer_id),
            headers=self.headers,
        ).json()
        methods = self.call(
            "GET",
            f"{api}/v3/payments/methods",
            params={"order_id": order["id"]},
            headers=self.headers,
        ).json()["data"]
        method = methods[0]
        stored = method["stored_instruments"][0]
        pat = self.call(
            "POST",
            f"{api}/v3/payments/access_tokens",
            json={"order": {"id": order["id"], "is_recurring": True}},
            headers=self.headers,
        ).json()["data"]["id"]
        payment = {
            "payment": {
                "instrument": {"type": stored["type"], "token": stored["token"]},
                "payment_method_id": method["id"],
            }
        }
        response = self.call(
            "POST",
            f"{self.server.payments_url}/stores/{store_hash}/payments",
            json=payment,
            headers={
                "Authorization": f"PAT {pat}",
                "Accept": "application/vnd.bc.v1+json",
                "Content-Type": "application/json",
            },
        )
        return response.status_code == 201


def run_sequential(plan: Plan, options: argparse.Namespace) -> tuple[float, int, int]:
    """Return (seconds, paid, 429s) of the plain loop over the plan."""
    with sandbox(options.latency) as server:
        seed_sandbox(server, plan, options.other_apps_share)
        loop = SequentialLoop(server)
        print(f"plain loop: {len(plan_customers(plan))} renewals", flush=True)
        started = time.monotonic()
        paid_count = 0
        for store_hash, customers in plan.customers.items():
            for customer_id in customers:
                paid_count += loop.renew(store_hash, customer_id)
        return time.monotonic() - started, paid_count, loop.rate_limited


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--subscriptions", type=int, default=2000, help="renewals to run"
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="Celery worker processes"
    )
    parser.add_argument("--threads", type=int, default=8, help="threads per worker")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.15,
        help="seconds the sandbox adds to each response",
    )
    parser.add_argument(
        "--tick", type=float, default=1.0, help="seconds between scheduler ticks"
    )
    parser.add_argument(
        "--sequential",
        type=int,
        default=None,
        help="renewals the plain loop does (default: all; 0 skips it)",
    )
    parser.add_argument(
        "--first-renewals",
        action="store_true",
        help="renew subscriptions that never paid, so no instrument is remembered",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".rebill/bench"),
        help="folder for worker logs and the SQLite fallback (emptied first)",
    )
    options = parser.parse_args(argv)
    options.other_apps_share = Settings.from_env({}).api_other_apps_share
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    plan = Plan.spread(options.subscriptions)
    share = options.other_apps_share
    if options.workdir.exists():
        shutil.rmtree(options.workdir)
    options.workdir.mkdir(parents=True)
    run = run_rebill(plan, options, options.workdir)
    floors = {
        store.store_hash: floor_seconds(
            store, len(plan.customers[store.store_hash]), share
        )
        for store in STORES
    }
    floor = max(floors.values())
    count = (
        options.sequential if options.sequential is not None else options.subscriptions
    )
    sequential = run_sequential(plan.limited(count), options) if count else None

    print()
    print(
        f"end-to-end benchmark: {options.subscriptions} subscriptions on "
        f"{len(STORES)} stores, {options.workers} workers x {options.threads} "
        f"threads, sandbox latency {options.latency * 1000:.0f} ms, other apps "
        f"use {share:.0%} of each quota; {machine_line()}"
    )
    rows = [
        [
            store.store_hash,
            store.plan,
            str(store.quota),
            str(len(plan.customers[store.store_hash])),
            f"{floors[store.store_hash]:.1f} s",
            str(run.limiter[store.store_hash].api_deferrals),
            str(run.limiter[store.store_hash].payments_deferrals),
        ]
        for store in STORES
    ]
    print_table(
        [
            "store",
            "plan",
            "quota / 30 s",
            "subscriptions",
            "floor",
            "API deferrals",
            "payments deferrals",
        ],
        rows,
    )
    print()
    figures = [
        ["total time", f"{run.seconds:.1f} s"],
        ["floor set by the quotas", f"{floor:.1f} s"],
        ["ratio", f"{run.seconds / floor:.3f}"],
        ["paid renewals", f"{run.paid} of {options.subscriptions}"],
        ["orders charged twice", str(run.charged_twice)],
        [
            "first and last payment",
            f"{run.first_payment:.1f} s and {run.last_payment:.1f} s after the start",
        ],
        [
            "store API requests per paid renewal",
            f"{run.api_requests / max(run.paid, 1):.2f}",
        ],
        ["429s (store API, payments host)", f"{run.api_429}, {run.payments_429}"],
        ["peak worker memory (max of workers)", f"{run.peak_mib:.0f} MiB"],
    ]
    if sequential is not None:
        seconds, paid_count, limited = sequential
        figures += [
            [
                "plain sequential loop",
                f"{seconds:.1f} s for {paid_count} paid of {count}",
            ],
            [
                "plain loop per renewal",
                f"{seconds / max(count, 1):.3f} s, {limited} 429s",
            ],
        ]
    print_table(["figure", "value"], figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
