"""Helpers shared by the benchmarks: services, seeding and figures."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from rebill.redis_server import EmbeddedRedis
from sandbox.server import SandboxServer
from sandbox.state import SandboxState

ORDER_PRICE = "20.00"


@contextmanager
def redis_url() -> Iterator[str]:
    """Yield REBILL_REDIS_URL if set, else the URL of a private redis-server."""
    configured = os.environ.get("REBILL_REDIS_URL")
    if configured:
        yield configured
        return
    with EmbeddedRedis() as server:
        yield server.url


@contextmanager
def sandbox(latency: float) -> Iterator[SandboxServer]:
    """Yield a started sandbox that adds `latency` seconds to every response."""
    with SandboxServer(SandboxState(latency=latency)) as server:
        yield server


def order_body(customer_id: int, external_order_id: str = "") -> dict[str, object]:
    """Return a one-line Incomplete (status 0) V2 order body."""
    return {
        "status_id": 0,
        "customer_id": customer_id,
        "billing_address": {
            "first_name": "Bench",
            "last_name": "Customer",
            "street_1": "1 Test Street",
            "city": "Austin",
            "state": "Texas",
            "zip": "78701",
            "country": "United States",
            "country_iso2": "US",
            "email": f"customer{customer_id}@example.com",
        },
        "products": [
            {
                "name": "Monthly box",
                "quantity": 1,
                "price_inc_tax": ORDER_PRICE,
                "price_ex_tax": ORDER_PRICE,
            }
        ],
        "external_order_id": external_order_id,
    }


@dataclass(frozen=True)
class PaymentJob:
    """Everything one POST /payments needs: an order, its PAT and a card."""

    order_id: int
    pat: str
    token: str
    payment_method_id: str = "stripe.card"


def payment_jobs(
    state: SandboxState, store_hash: str, count: int, customers: int = 50
) -> list[PaymentJob]:
    """Create `count` payable orders with a PAT each, straight in the state.

    Seeding through the state instead of over HTTP keeps the store API quota
    out of a benchmark of the payments host.
    """
    tokens = {}
    for customer_id in range(1, customers + 1):
        state.add_customer(store_hash, customer_id)
        tokens[customer_id] = state.add_instrument(
            store_hash, customer_id, kind="stored_card", is_default=True
        )
    jobs = []
    for number in range(count):
        customer_id = number % customers + 1
        order = state.create_order(store_hash, order_body(customer_id))
        pat = state.mint_pat(
            store_hash, {"order": {"id": order.id, "is_recurring": True}}
        )
        jobs.append(PaymentJob(order.id, pat, tokens[customer_id]))
    return jobs


def max_in_window(times: Sequence[float], window: float) -> int:
    """Return the max count of times that fit in one closed `window`-second span."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] < moment - window:
            first += 1
        best = max(best, last - first + 1)
    return best


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def milliseconds(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f} ms"


def machine_line() -> str:
    """Describe the machine, Python and date, for the benchmarks page."""
    cores = os.cpu_count() or 0
    memory = ""
    try:
        with open("/proc/meminfo") as meminfo:
            kilobytes = int(meminfo.readline().split()[1])
        memory = f", {kilobytes / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{platform.machine()} {platform.system()}, {cores} cores{memory}, "
        f"Python {platform.python_version()}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows as a Markdown table, so the output pastes into the docs."""
    widths = [
        max(len(str(row[column])) for row in [headers, *rows])
        for column in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    print(line(headers))
    print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in rows:
        print(line(row))
