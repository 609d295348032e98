"""The sandbox's in-memory state: stores, orders, PATs, charges and the clock.

Every public method takes the one lock, so concurrent requests see each change
whole. Seeding methods (add_store, add_customer, ...) raise SetupError on bad
input. The methods behind the HTTP endpoints raise ApiRejection, which the app
turns into BigCommerce's error responses.
"""

from __future__ import annotations

import copy
import logging
import re
import secrets
import threading
import uuid
from datetime import datetime
from typing import Any

from sandbox.clock import SandboxClock
from sandbox.errors import ApiRejection, Envelope, SetupError, json_value
from sandbox.faults import Fault, build_fault
from sandbox.gateway import (
    capture,
    charge_source,
    gateway_behavior,
    hold_pending,
    settle,
)
from sandbox.instruments import (
    DEFAULT_METHOD_BY_KIND,
    INSTRUMENT_KINDS,
    STORED_PAYPAL_ACCOUNT,
    Behavior,
    Instrument,
    PaymentMethod,
    extra_method,
    new_token,
    render_for_customers,
    render_method,
)
from sandbox.limits import Decision
from sandbox.money import to_minor_units
from sandbox.orders import (
    INCOMPLETE,
    Order,
    build_order,
    updated_order,
    v2_error,
)
from sandbox.pats import (
    PAT_LIFETIME,
    PatRecord,
    check_pat,
    decode_pat,
    encode_pat,
    new_jti,
)
from sandbox.payments import (
    DOCUMENTED_CODES,
    PaymentRequest,
    check_accept,
    invalid_payment,
    parse_authorization,
    parse_payment_body,
    payments_error,
)
from sandbox.store import PLAN_API_QUOTAS, PLANS, Store
from sandbox.transactions import LedgerEntry, render_transaction

logger = logging.getLogger(__name__)

STORE_HASH_PATTERN = re.compile(r"^[a-z0-9]{1,32}$")
DIGITS = re.compile(r"[0-9]+")


class SandboxState:
    """Thread-safe state of one sandbox, shared by every request it serves.

    `strict_accept` makes Process Payment return 406 to any Accept header but
    application/vnd.bc.v1+json; when False, application/json is accepted too.
    `latency` is a delay in seconds added to every store API and payments
    response, for benchmarks.
    """

    def __init__(self, *, strict_accept: bool = True, latency: float = 0.0) -> None:
        self.strict_accept = strict_accept
        self.latency = check_latency(latency)
        self.clock = SandboxClock()
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self._stores: dict[str, Store] = {}
        self._pats: dict[str, PatRecord] = {}
        self._ledger: list[LedgerEntry] = []

    # Clock

    def now(self) -> datetime:
        """Return the sandbox's current time (UTC)."""
        return self.clock.now()

    def freeze_clock(self, frozen: bool = True) -> None:
        """Stop the clock (or let it run again when `frozen` is False).

        A stopped clock moves only by advance_clock, so rate-limit windows and
        PAT expiry do not depend on how fast the machine runs.
        """
        if frozen:
            self.clock.freeze()
        else:
            self.clock.unfreeze()
        logger.info("clock %s at %s", "frozen" if frozen else "running", self.now())

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock forward by `seconds`."""
        self.clock.advance(seconds)
        logger.info("clock moved forward %s s, now %s", seconds, self.now())

    def configure(
        self, *, latency: float | None = None, strict_accept: bool | None = None
    ) -> None:
        """Change the sandbox-wide settings that are given."""
        if latency is not None:
            self.latency = check_latency(latency)
        if strict_accept is not None:
            if not isinstance(strict_accept, bool):
                raise SetupError(
                    f"invalid strict_accept {json_value(strict_accept)}: use true or "
                    "false"
                )
            self.strict_accept = strict_accept
        logger.info(
            "settings: latency %s s, strict_accept %s", self.latency, self.strict_accept
        )

    # Seeding

    def add_store(
        self,
        store_hash: str,
        access_token: str,
        *,
        plan: str = "plus",
        currency: str = "USD",
        api_quota: int | None = None,
        other_apps_share: float = 0.0,
    ) -> None:
        """Add a store that accepts `access_token` as its X-Auth-Token.

        `api_quota` is the store API's requests per 30-second window. It is
        required for the enterprise plan, and overrides the plan's quota
        (150 for standard and plus, 450 for pro) when given for another plan.
        `other_apps_share` is the fraction of each window that other apps use.
        """
        check_new_store(store_hash, access_token, plan, currency)
        quota = check_api_quota(store_hash, plan, api_quota)
        share = check_share(other_apps_share)
        with self._lock:
            if store_hash in self._stores:
                raise SetupError(
                    f"store {store_hash} already exists; pick another store hash",
                    http_status=409,
                )
            store_id = str(1_000_000_000 + len(self._stores) + 1)
            store = Store(
                store_hash, access_token, plan, currency.upper(), store_id, quota
            )
            store.api_limiter.other_apps_share = share
            self._stores[store_hash] = store
        logger.info("store %s added (plan %s, %s)", store_hash, plan, currency)

    def add_customer(self, store_hash: str, customer_id: int) -> None:
        """Add a customer; adding one that exists changes nothing."""
        if not isinstance(customer_id, int) or customer_id < 1:
            raise SetupError(
                f"invalid customer_id {json_value(customer_id)}: use an integer of 1 "
                "or more"
            )
        with self._lock:
            self._seed_store(store_hash).customers.add(customer_id)
        logger.info("store %s customer %s added", store_hash, customer_id)

    def add_instrument(
        self,
        store_hash: str,
        customer_id: int,
        *,
        kind: str = "stored_card",
        payment_method_id: str | None = None,
        brand: str = "VISA",
        last_4: str = "4242",
        expiry_month: int = 12,
        expiry_year: int = 2030,
        email: str | None = None,
        is_default: bool = False,
        behavior: Behavior = None,
    ) -> str:
        """Store an instrument for a customer and return its 64-hex token.

        `behavior` sets how the instrument responds to a charge: None succeeds,
        "pending" returns pending, and a documented error code declines with it.
        The code may also be a string of digits, as JSON clients often send it.
        """
        behavior = parse_behavior(behavior)
        check_instrument(kind, last_4, expiry_month, expiry_year, behavior)
        method_id = payment_method_id or DEFAULT_METHOD_BY_KIND[kind]
        instrument = Instrument(
            token=new_token(),
            customer_id=customer_id,
            kind=kind,
            payment_method_id=method_id,
            brand=brand,
            last_4=last_4,
            expiry_month=expiry_month,
            expiry_year=expiry_year,
            email=email or default_email(kind, customer_id),
            is_default=is_default,
            behavior=behavior,
        )
        with self._lock:
            store = self._seed_store(store_hash)
            self._check_customer(store, customer_id)
            store.methods.setdefault(method_id, extra_method(method_id, kind))
            if store.methods[method_id].kind != kind:
                raise SetupError(
                    f"payment method {method_id} charges "
                    f"{store.methods[method_id].kind}, not {kind}; pass a matching "
                    "payment_method_id"
                )
            if is_default:
                self._clear_default(store, customer_id, kind)
            store.instruments[instrument.token] = instrument
        logger.info(
            "store %s customer %s %s ...%s added for %s",
            store_hash,
            customer_id,
            kind,
            instrument.token[-4:],
            method_id,
        )
        return instrument.token

    def remove_instrument(self, store_hash: str, token: str) -> None:
        """Delete a stored instrument, as a shopper does in My Account."""
        with self._lock:
            store = self._seed_store(store_hash)
            if store.instruments.pop(token, None) is None:
                raise SetupError(
                    f"store {store_hash} has no instrument ending ...{token[-4:]}",
                    http_status=404,
                )
        logger.info("store %s instrument ...%s removed", store_hash, token[-4:])

    # Inspection

    def ledger(self, store_hash: str | None = None) -> list[dict[str, Any]]:
        """Return every successful charge, of one store or of all, oldest first."""
        with self._lock:
            return [
                entry.as_dict()
                for entry in self._ledger
                if store_hash is None or entry.store_hash == store_hash
            ]

    def charges_for_order(self, store_hash: str, order_id: int) -> int:
        """Return how many successful charges the order received."""
        with self._lock:
            return sum(
                1
                for entry in self._ledger
                if entry.store_hash == store_hash and entry.order_id == order_id
            )

    def orders(self, store_hash: str) -> list[dict[str, Any]]:
        """Return a summary of each order of a store, by id."""
        with self._lock:
            store = self._seed_store(store_hash)
            return [summarize_order(order) for order in store.orders.values()]

    def pats(self, store_hash: str) -> list[dict[str, Any]]:
        """Return each PAT minted for a store, oldest first, without token text."""
        with self._lock:
            self._seed_store(store_hash)
            return [
                record.summary()
                for record in self._pats.values()
                if record.store_hash == store_hash
            ]

    # Faults and pending payments

    def inject_fault(
        self,
        store_hash: str,
        endpoint: str,
        kind: str,
        *,
        code: int | None = None,
        status: int | None = None,
        delay: float | None = None,
        count: int = 1,
        message: str | None = None,
    ) -> None:
        """Make the next `count` requests of an endpoint fail in the way `kind` names.

        The endpoints and kinds are listed in sandbox.faults. Faults of one
        endpoint apply in the order they were injected.
        """
        fault = build_fault(
            endpoint,
            kind,
            code=code,
            status=status,
            delay=delay,
            count=count,
            message=message,
        )
        with self._lock:
            self._seed_store(store_hash).faults.append(fault)
        logger.info(
            "store %s fault injected: %s on %s for %s request(s)",
            store_hash,
            kind,
            endpoint,
            count,
        )

    def take_fault(self, store_hash: str, endpoint: str) -> Fault | None:
        """Use up one request of the first fault of `endpoint`, and return it."""
        with self._lock:
            store = self._stores.get(store_hash)
            if store is None:
                return None
            for fault in store.faults:
                if fault.endpoint == endpoint:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        store.faults.remove(fault)
                    return copy.copy(fault)
            return None

    def faults(self, store_hash: str) -> list[dict[str, Any]]:
        """Return the faults that still apply to a store, in order."""
        with self._lock:
            return [fault.summary() for fault in self._seed_store(store_hash).faults]

    def clear_faults(self, store_hash: str) -> None:
        with self._lock:
            self._seed_store(store_hash).faults.clear()

    def settle_pending(
        self,
        store_hash: str,
        order_id: int | None = None,
        outcome: str = "success",
    ) -> list[int]:
        """Settle pending payments of a store, or of one order; return order ids.

        "success" moves each order to 11, adds a purchase transaction and a
        ledger entry. "declined" moves it to 6 (Declined) with a failed
        purchase transaction.
        """
        if outcome not in ("success", "declined"):
            raise SetupError(
                f"invalid outcome {json_value(outcome)}; use success or declined"
            )
        with self._lock:
            store = self._seed_store(store_hash)
            order_ids = list(store.pending) if order_id is None else [order_id]
            if order_id is not None and order_id not in store.pending:
                raise SetupError(
                    f"store {store_hash} order {order_id} has no pending payment",
                    http_status=404,
                )
            for pending_id in order_ids:
                entry = settle(store, store.orders[pending_id], outcome, self.now())
                if entry is not None:
                    self._ledger.append(entry)
        for pending_id in order_ids:
            logger.info(
                "store %s order %s pending payment settled: %s",
                store_hash,
                pending_id,
                outcome,
            )
        return order_ids

    def api_quota(self, store_hash: str) -> int:
        """Return the store API's requests per 30-second window for the store."""
        with self._lock:
            return self._api_store(store_hash).api_quota

    # Rate limits

    def set_other_apps_share(self, store_hash: str, share: float) -> None:
        """Set the fraction of each store API window that other apps use."""
        share = check_share(share)
        with self._lock:
            self._seed_store(store_hash).api_limiter.other_apps_share = share
        logger.info(
            "store %s other apps now use %s of the API quota", store_hash, share
        )

    def admit_api_request(self, store_hash: str) -> Decision:
        """Count a store API request against the store's quota."""
        with self._lock:
            store = self._api_store(store_hash)
            store.requests["api"] += 1
            return store.api_limiter.admit(self.clock.monotonic())

    def admit_payment(self, store_hash: str) -> Decision | None:
        """Count a POST /payments against the 50-per-4-seconds limit.

        Returns None for an unknown store, which the payment handling rejects.
        """
        with self._lock:
            store = self._stores.get(store_hash)
            if store is None:
                return None
            store.requests["payments"] += 1
            return store.payments_limiter.admit(self.clock.monotonic())

    def record_rate_limited(self, store_hash: str, host: str) -> None:
        """Count a 429 sent to a store on `host` ("api" or "payments")."""
        with self._lock:
            store = self._stores.get(store_hash)
            if store is not None:
                store.rate_limited[host] += 1
        logger.warning("store %s %s host: responded 429", store_hash, host)

    def rate_limited_counts(self, store_hash: str) -> dict[str, int]:
        """Return how many 429s a store got, per host: {"api": n, "payments": m}."""
        with self._lock:
            return dict(self._seed_store(store_hash).rate_limited)

    def request_counts(self, store_hash: str) -> dict[str, int]:
        """Return how many requests a store got, per host, 429s included."""
        with self._lock:
            return dict(self._seed_store(store_hash).requests)

    # Store API (api host)

    def authenticate(self, store_hash: str, access_token: str | None) -> None:
        """Check the X-Auth-Token of an API-host request: 404 or 401 if wrong."""
        with self._lock:
            store = self._stores.get(store_hash)
            if store is None:
                raise ApiRejection(
                    404, f"Store {store_hash} was not found.", envelope=Envelope.V3
                )
            if access_token is None or not secrets.compare_digest(
                access_token.encode(), store.access_token.encode()
            ):
                raise ApiRejection(
                    401,
                    "The X-Auth-Token header is missing or invalid for this store.",
                    envelope=Envelope.V3,
                )

    def create_order(self, store_hash: str, body: object) -> Order:
        """Validate and store a POST /v2/orders body; return a copy of the order."""
        with self._lock:
            store = self._api_store(store_hash)
            order = build_order(
                body,
                order_id=store.next_order_id,
                store_hash=store_hash,
                now=self.now(),
                customer_ids=store.customers,
                store_currency=store.currency,
                next_line_id=store.take_line_id,
            )
            store.take_order_id()
            store.orders[order.id] = order
            logger.info(
                "store %s order %s created (status %s, total %s %s)",
                store_hash,
                order.id,
                order.status_id,
                order.total_inc_tax,
                order.currency,
            )
            return copy.deepcopy(order)

    def get_order(self, store_hash: str, order_id: int) -> Order:
        with self._lock:
            return copy.deepcopy(self._v2_order(store_hash, order_id))

    def list_orders(self, store_hash: str, filters: dict[str, Any]) -> list[Order]:
        """Return the orders matching exact-value filters, by id ascending.

        `filters` may hold external_order_id, customer_id, status_id, min_id and
        max_id; the caller pages the result.
        """
        with self._lock:
            store = self._api_store(store_hash)
            found = [o for o in store.orders.values() if order_matches(o, filters)]
            return copy.deepcopy(sorted(found, key=lambda order: order.id))

    def update_order(self, store_hash: str, order_id: int, body: object) -> Order:
        """Apply a PUT /v2/orders/{id}; a status change creates no transaction."""
        with self._lock:
            store = self._api_store(store_hash)
            order = self._v2_order(store_hash, order_id)
            changed = updated_order(
                order,
                body,
                now=self.now(),
                customer_ids=store.customers,
                next_line_id=store.take_line_id,
            )
            store.orders[order_id] = changed
            logger.info(
                "store %s order %s updated (status %s, total %s %s)",
                store_hash,
                order_id,
                changed.status_id,
                changed.total_inc_tax,
                changed.currency,
            )
            return copy.deepcopy(changed)

    def payment_methods(self, store_hash: str, order_id: int) -> list[dict[str, Any]]:
        """Return the store's methods with the order customer's instruments."""
        with self._lock:
            store = self._api_store(store_hash)
            order = self._payable_order(store, order_id)
            return [
                render_method(
                    method, store.instruments_of(order.customer_id, method.id)
                )
                for method in store.methods.values()
            ]

    def mint_pat(self, store_hash: str, body: object) -> str:
        """Create a PAT for the order in a POST /v3/payments/access_tokens body."""
        order_id, is_recurring = parse_pat_request(body)
        with self._lock:
            store = self._api_store(store_hash)
            order = self._payable_order(store, order_id)
            now = self.now()
            record = PatRecord(
                jti=new_jti(),
                store_hash=store_hash,
                order_id=order.id,
                amount=to_minor_units(order.total_inc_tax, order.currency),
                currency=order.currency,
                is_recurring=is_recurring,
                issued_at=now,
                expires_at=now + PAT_LIFETIME,
            )
            self._pats[record.jti] = record
        logger.info(
            "store %s order %s PAT created (amount %s %s, is_recurring %s)",
            store_hash,
            order_id,
            record.amount,
            record.currency,
            is_recurring,
        )
        return encode_pat(record, store_id=store.store_id, secret=self._secret)

    def order_transactions(self, store_hash: str, order_id: int) -> list[dict]:
        """Return the V3 transactions of an order, oldest first; 404 if unknown."""
        with self._lock:
            store = self._api_store(store_hash)
            if order_id not in store.orders:
                raise ApiRejection(
                    404, f"Order {order_id} was not found.", envelope=Envelope.V3
                )
            return [render_transaction(t) for t in store.transactions.get(order_id, [])]

    def customer_instruments(self, store_hash: str, customer_id: int) -> list[dict]:
        """Return a customer's stored instruments in the Customers API shape."""
        with self._lock:
            store = self._api_store(store_hash)
            if customer_id not in store.customers:
                raise ApiRejection(
                    404, f"Customer {customer_id} was not found.", envelope=Envelope.V3
                )
            return [
                render_for_customers(instrument)
                for instrument in store.instruments.values()
                if instrument.customer_id == customer_id
            ]

    # Payments host

    def process_payment(
        self,
        store_hash: str,
        *,
        authorization: str | None,
        accept: str | None,
        body: object,
    ) -> dict[str, Any]:
        """Run Process Payment and return the `data` of the 201 response.

        Checks run in this order: Authorization header, Accept header, body,
        PAT signature, store, PAT store and expiry and use, order status,
        amount, instrument. Only an attempt that passes all of them reaches the
        gateway and uses up the PAT, whatever the gateway returns.
        """
        jwt_text = parse_authorization(authorization)
        check_accept(accept, strict=self.strict_accept)
        request = parse_payment_body(body)
        claims = decode_pat(jwt_text, secret=self._secret)
        with self._lock:
            store = self._payments_store(store_hash)
            record = check_pat(
                self._pats.get(str(claims.get("jti"))),
                store_hash=store_hash,
                now=self.now(),
            )
            order = self._payable_order(store, record.order_id)
            check_amount(order, record)
            method, instrument = self._charged_instrument(store, order, request)
            record.used = True
            return self._charge(store, order, method, instrument, request)

    # Internals, called with the lock held

    def _seed_store(self, store_hash: str) -> Store:
        store = self._stores.get(store_hash)
        if store is None:
            raise SetupError(
                f"unknown store {store_hash}: add it first with POST /_sandbox/stores",
                http_status=404,
            )
        return store

    def _check_customer(self, store: Store, customer_id: int) -> None:
        if customer_id not in store.customers:
            raise SetupError(
                f"store {store.store_hash} has no customer {customer_id}: add it "
                f"first with POST /_sandbox/stores/{store.store_hash}/customers",
                http_status=404,
            )

    def _clear_default(self, store: Store, customer_id: int, kind: str) -> None:
        for instrument in store.instruments.values():
            if instrument.customer_id == customer_id and instrument.kind == kind:
                instrument.is_default = False

    def _api_store(self, store_hash: str) -> Store:
        store = self._stores.get(store_hash)
        if store is None:
            raise ApiRejection(
                404, f"Store {store_hash} was not found.", envelope=Envelope.V3
            )
        return store

    def _payments_store(self, store_hash: str) -> Store:
        store = self._stores.get(store_hash)
        if store is None:
            raise ApiRejection(
                404, f"Store {store_hash} was not found.", envelope=Envelope.PAYMENTS
            )
        return store

    def _v2_order(self, store_hash: str, order_id: int) -> Order:
        order = self._api_store(store_hash).orders.get(order_id)
        if order is None:
            raise v2_error("The requested resource was not found.", 404)
        return order

    def _payable_order(self, store: Store, order_id: int) -> Order:
        """Return an order that the Payments API may charge: it exists, status 0."""
        order = store.orders.get(order_id)
        if order is None:
            raise payments_error(30003, f"Order {order_id} could not be found.")
        if order.status_id != INCOMPLETE:
            raise payments_error(30101)
        return order

    def _charged_instrument(
        self, store: Store, order: Order, request: PaymentRequest
    ) -> tuple[PaymentMethod, Instrument | None]:
        """Return the method and stored instrument to charge; 422 if not usable."""
        method = store.methods.get(request.payment_method_id)
        if request.card is not None:
            if method is None or method.type != "card":
                raise invalid_payment(
                    f"payment_method_id {request.payment_method_id} is not a card "
                    "method of this store.",
                    422,
                )
            return method, None
        instruments = store.instruments_of(order.customer_id, request.payment_method_id)
        for instrument in instruments:
            if (
                method is not None
                and instrument.token == request.token
                and instrument.kind == request.instrument_type
            ):
                return method, instrument
        raise payments_error(30051)

    def _charge(
        self,
        store: Store,
        order: Order,
        method: PaymentMethod,
        instrument: Instrument | None,
        request: PaymentRequest,
    ) -> dict[str, Any]:
        """Send the charge to the simulated gateway and apply its outcome."""
        now = self.now()
        behavior = gateway_behavior(instrument, request, now)
        if isinstance(behavior, int):
            logger.info(
                "store %s order %s payment declined with code %s",
                store.store_hash,
                order.id,
                behavior,
            )
            raise payments_error(behavior)
        source = charge_source(method, instrument, request)
        if behavior == "pending":
            payment_id = hold_pending(store, order, source, now)
            status = "pending"
        else:
            payment_id = str(uuid.uuid4())
            self._ledger.append(capture(store, order, source, payment_id, now))
            status = "success"
        logger.info(
            "store %s order %s payment %s: %s %s via %s",
            store.store_hash,
            order.id,
            status,
            order.total_inc_tax,
            order.currency,
            method.id,
        )
        return {"id": payment_id, "status": status, "transaction_type": "purchase"}


def check_new_store(
    store_hash: str, access_token: str, plan: str, currency: str
) -> None:
    if not isinstance(store_hash, str) or not STORE_HASH_PATTERN.match(store_hash):
        raise SetupError(
            f"invalid store hash {json_value(store_hash)}: use 1 to 32 lowercase "
            "letters or digits"
        )
    if not isinstance(access_token, str) or not access_token:
        raise SetupError(f"store {store_hash}: access_token must be a non-empty string")
    if plan not in PLANS:
        raise SetupError(
            f"store {store_hash}: invalid plan {json_value(plan)}; use one of "
            f"{', '.join(PLANS)}"
        )
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise SetupError(
            f"store {store_hash}: invalid currency {json_value(currency)}; use an "
            "ISO-4217 code such as USD"
        )


def check_share(share: float) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float):
        raise SetupError(
            f"invalid other_apps_share {json_value(share)}: use a number 0 to 1"
        )
    if not 0 <= share < 1:
        raise SetupError(
            f"invalid other_apps_share {json_value(share)}: use at least 0 and less "
            "than 1"
        )
    return float(share)


def check_latency(latency: float) -> float:
    if isinstance(latency, bool) or not isinstance(latency, int | float):
        raise SetupError(
            f"invalid latency {json_value(latency)}: use a number of seconds"
        )
    if latency < 0:
        raise SetupError(
            f"invalid latency {json_value(latency)}: use zero or more seconds"
        )
    return float(latency)


def check_api_quota(store_hash: str, plan: str, api_quota: int | None) -> int:
    if api_quota is None:
        if plan == "enterprise":
            raise SetupError(
                f"store {store_hash}: the enterprise plan needs api_quota, the "
                "store API requests allowed per 30 seconds"
            )
        return PLAN_API_QUOTAS[plan]
    if isinstance(api_quota, bool) or not isinstance(api_quota, int) or api_quota < 1:
        raise SetupError(
            f"store {store_hash}: invalid api_quota {json_value(api_quota)}; use an "
            "integer of 1 or more"
        )
    return api_quota


def check_instrument(
    kind: str, last_4: str, expiry_month: int, expiry_year: int, behavior: Behavior
) -> None:
    if kind not in INSTRUMENT_KINDS:
        raise SetupError(
            f"invalid instrument kind {json_value(kind)}; use one of "
            f"{', '.join(INSTRUMENT_KINDS)}"
        )
    if not isinstance(last_4, str) or len(last_4) != 4 or not last_4.isdigit():
        raise SetupError(
            f"invalid last_4 {json_value(last_4)}: use exactly four digits"
        )
    if not isinstance(expiry_month, int) or not 1 <= expiry_month <= 12:
        raise SetupError(
            f"invalid expiry_month {json_value(expiry_month)}: use 1 to 12"
        )
    if not isinstance(expiry_year, int) or not 1000 <= expiry_year <= 9999:
        raise SetupError(
            f"invalid expiry_year {json_value(expiry_year)}: use four digits"
        )
    if behavior is None or behavior == "pending":
        return
    if isinstance(behavior, bool) or behavior not in DOCUMENTED_CODES:
        codes = ", ".join(str(code) for code in sorted(DOCUMENTED_CODES))
        raise SetupError(
            f"invalid behavior {json_value(behavior)}: use null to succeed, "
            '"pending", or a documented error code as a number, such as 30106 '
            f"(documented codes: {codes})"
        )


def parse_behavior(behavior: object) -> Behavior:
    """Return `behavior` with an error code given as a string ("30106") as a number.

    check_instrument still decides whether the result is a valid behavior.
    """
    if isinstance(behavior, str) and DIGITS.fullmatch(behavior.strip()):
        return int(behavior)
    return behavior  # type: ignore[return-value]


def default_email(kind: str, customer_id: int) -> str | None:
    if kind != STORED_PAYPAL_ACCOUNT:
        return None
    return f"customer{customer_id}@example.com"


def parse_pat_request(body: object) -> tuple[int, bool]:
    """Return the order id and is_recurring of a PAT request; 400/10001 if invalid."""
    order = body.get("order") if isinstance(body, dict) else None
    order_id = order.get("id") if isinstance(order, dict) else None
    if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id < 1:
        raise invalid_payment(
            "order.id is required and must be an integer of 1 or more."
        )
    assert isinstance(order, dict)
    is_recurring = order.get("is_recurring", False)
    if not isinstance(is_recurring, bool):
        raise invalid_payment("order.is_recurring must be true or false.")
    return order_id, is_recurring


def check_amount(order: Order, record: PatRecord) -> None:
    """Raise 422/30004 when the order's total no longer matches the PAT."""
    amount = to_minor_units(order.total_inc_tax, order.currency)
    if amount != record.amount or order.currency != record.currency:
        raise payments_error(30004)


def order_matches(order: Order, filters: dict[str, Any]) -> bool:
    if "external_order_id" in filters:
        if order.external_order_id != filters["external_order_id"]:
            return False
    for name in ("customer_id", "status_id"):
        if name in filters and getattr(order, name) != filters[name]:
            return False
    if "min_id" in filters and order.id < filters["min_id"]:
        return False
    return not ("max_id" in filters and order.id > filters["max_id"])


def summarize_order(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status_id": order.status_id,
        "payment_status": order.payment_status,
        "total_inc_tax": str(order.total_inc_tax),
        "amount": to_minor_units(order.total_inc_tax, order.currency),
        "currency": order.currency,
        "external_order_id": order.external_order_id,
    }
