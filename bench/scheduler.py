"""Scheduler benchmark: tick time with up to 100,000 active subscriptions.

    python -m bench.scheduler [--sizes 10000,30000,100000] [--due 10000]

For each size, creates a fresh PostgreSQL database (BENCH_POSTGRES_URL, by
default the local server) with that many active subscriptions. `--due` of them
are due now and the rest over the next 30 days. A private Redis is the Celery
broker. Then it times:

- the due tick: claims every due subscription in batches, opens its billing
  cycle and publishes its renew task to Redis, as `rebill scheduler` does;
- an idle tick right after, with nothing due (the median of five), which
  shows what every later tick costs at that size.

A flat tick means both times depend on the due renewals, not on the size of
the tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench.common import machine_line, order_body, print_table, redis_url
from bench.end_to_end import POSTGRES_URL
from models import Store, Subscription, SubscriptionStatus
from rebill.encryption import generate_key
from rebill.migrations import upgrade
from rebill.runtime import Runtime
from rebill.settings import Settings
from scheduler.daemon import celery_enqueue
from scheduler.tick import tick

STORES = 10
INSERT_CHUNK = 5000
IDLE_TICKS = 5


@dataclass
class SizeResult:
    size: int
    due: int
    due_tick: float
    claimed: int
    queued: int
    idle_tick: float

    def row(self) -> list[str]:
        return [
            f"{self.size:,}",
            f"{self.due:,}",
            f"{self.due_tick:.2f} s",
            f"{self.claimed:,} / {self.queued:,}",
            f"{self.queued / self.due_tick:,.0f}",
            f"{self.idle_tick * 1000:.1f} ms",
        ]


@contextmanager
def postgres_database() -> Iterator[str]:
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
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


def seed(runtime: Runtime, size: int, due: int, now: datetime) -> None:
    """Insert `size` active subscriptions, `due` of them due before `now`."""
    with runtime.sessions() as session:
        stores = [
            Store(
                store_hash=f"bench{number}",
                access_token="bench-scheduler-token",
                api_url="http://127.0.0.1:9",
                payments_url="http://127.0.0.1:9/payments-host",
                retry_policy={},
            )
            for number in range(STORES)
        ]
        session.add_all(stores)
        session.flush()
        store_ids = [store.id for store in stores]
        session.commit()
    template = order_body(1)
    del template["status_id"], template["customer_id"], template["external_order_id"]
    with runtime.engine.begin() as connection:
        for start in range(0, size, INSERT_CHUNK):
            rows = [
                subscription_row(number, store_ids, template, due, now)
                for number in range(start, min(size, start + INSERT_CHUNK))
            ]
            connection.execute(sa.insert(Subscription), rows)
        connection.execute(sa.text("ANALYZE"))


def subscription_row(
    number: int, store_ids: list[int], template: dict, due: int, now: datetime
) -> dict[str, object]:
    if number < due:
        next_billing_at = now - timedelta(minutes=1)
    else:
        # Spread the others over the next 30 days, one every few seconds.
        next_billing_at = now + timedelta(seconds=60 + number * 25)
    return {
        "store_id": store_ids[number % len(store_ids)],
        "reference": f"bench-{number}",
        "customer_id": number + 1,
        "cron": "0 9 * * *",
        "timezone": "America/Chicago",
        "currency": "USD",
        "order_template": template,
        "amount_minor": 2000,
        "next_billing_at": next_billing_at,
        "status": SubscriptionStatus.ACTIVE,
        "created_at": now,
        "updated_at": now,
    }


def measure(size: int, due: int, url: str, batch: int) -> SizeResult:
    with postgres_database() as database:
        upgrade(database)
        settings = replace(
            Settings.from_env({}),
            database_url=database,
            redis_url=url,
            secret_key=generate_key(),
            scheduler_batch_size=batch,
        )
        runtime = Runtime.from_settings(settings)
        now = datetime.now(UTC)
        seed(runtime, size, due, now)
        enqueue = celery_enqueue(runtime)
        started = time.perf_counter()
        result = tick(runtime, now, enqueue)
        due_tick = time.perf_counter() - started
        idle = []
        for _ in range(IDLE_TICKS):
            started = time.perf_counter()
            tick(runtime, now, enqueue)
            idle.append(time.perf_counter() - started)
        runtime.close()
    return SizeResult(
        size,
        due,
        due_tick,
        len(result.opened),
        result.queued,
        statistics.median(idle),
    )


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,30000,100000",
        help="comma-separated numbers of active subscriptions",
    )
    parser.add_argument(
        "--due", type=int, default=10_000, help="subscriptions due at each size"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=Settings().scheduler_batch_size,
        help="due subscriptions claimed per transaction",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    sizes = [int(size) for size in options.sizes.split(",")]
    results = []
    with redis_url() as url:
        for size in sizes:
            due = min(options.due, size)
            print(f"{size:,} subscriptions, {due:,} due", flush=True)
            results.append(measure(size, due, url, options.batch))
    print()
    print(
        f"scheduler benchmark: PostgreSQL, Celery broker on Redis, claims in "
        f"batches of {options.batch}; {machine_line()}"
    )
    print_table(
        [
            "subscriptions",
            "due",
            "due tick",
            "claimed / queued",
            "queued per s",
            "idle tick (median of 5)",
        ],
        [result.row() for result in results],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
