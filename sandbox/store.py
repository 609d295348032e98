"""One simulated BigCommerce store: its customers, instruments and orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.faults import Fault
from sandbox.instruments import DEFAULT_METHODS, Instrument, PaymentMethod
from sandbox.limits import FixedWindowQuota, SlidingWindowLimiter
from sandbox.orders import Order
from sandbox.transactions import Transaction

if TYPE_CHECKING:
    from sandbox.gateway import PendingCharge

PLANS = ("standard", "plus", "pro", "enterprise")

# Store API requests per 30-second window by plan. Enterprise quotas are set per
# store, so add_store takes one.
PLAN_API_QUOTAS = {"standard": 150, "plus": 150, "pro": 450}

# BigCommerce numbers the first order of a new store 100.
FIRST_ORDER_ID = 100


@dataclass
class Store:
    """A store and everything the sandbox keeps for it. Guarded by the state lock."""

    store_hash: str
    access_token: str
    plan: str
    currency: str
    store_id: str  # the numeric id BigCommerce puts in PATs, as a string
    api_quota: int  # store API requests per 30-second window
    customers: set[int] = field(default_factory=set)
    instruments: dict[str, Instrument] = field(default_factory=dict)
    methods: dict[str, PaymentMethod] = field(
        default_factory=lambda: {method.id: method for method in DEFAULT_METHODS}
    )
    orders: dict[int, Order] = field(default_factory=dict)
    transactions: dict[int, list[Transaction]] = field(default_factory=dict)
    pending: dict[int, PendingCharge] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    payments_limiter: SlidingWindowLimiter = field(default_factory=SlidingWindowLimiter)
    api_limiter: FixedWindowQuota = field(init=False)
    rate_limited: dict[str, int] = field(
        default_factory=lambda: {"api": 0, "payments": 0}
    )
    # Requests that reached a host's limit, admitted or not, per host.
    requests: dict[str, int] = field(default_factory=lambda: {"api": 0, "payments": 0})
    next_order_id: int = FIRST_ORDER_ID
    next_line_id: int = 1
    next_transaction_id: int = 1

    def __post_init__(self) -> None:
        self.api_limiter = FixedWindowQuota(self.api_quota)

    def take_order_id(self) -> int:
        self.next_order_id += 1
        return self.next_order_id - 1

    def take_line_id(self) -> int:
        self.next_line_id += 1
        return self.next_line_id - 1

    def take_transaction_id(self) -> int:
        self.next_transaction_id += 1
        return self.next_transaction_id - 1

    def instruments_of(self, customer_id: int, method_id: str) -> list[Instrument]:
        """Return a customer's instruments for a method; none for guests (id 0)."""
        if customer_id == 0:
            return []
        return [
            instrument
            for instrument in self.instruments.values()
            if instrument.customer_id == customer_id
            and instrument.payment_method_id == method_id
        ]
