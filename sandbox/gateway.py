"""The simulated payment gateway: outcomes, transactions and ledger entries.

Functions here change a Store and an Order in place and must run under the
state lock. A success moves the order from 0 to 11 with payment_status
"captured"; a pending payment moves it to 7 with "pending" until it settles.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.instruments import STORED_CARD, Behavior, Instrument, PaymentMethod
from sandbox.money import from_minor_units, to_minor_units
from sandbox.orders import AWAITING_FULFILLMENT, AWAITING_PAYMENT, Order
from sandbox.payments import PaymentRequest
from sandbox.store import Store
from sandbox.transactions import LedgerEntry, Transaction

DECLINED = 6


@dataclass(frozen=True)
class ChargeSource:
    """The method and the stored instrument or raw card that a payment charges."""

    method: PaymentMethod
    instrument_type: str
    token: str | None
    token_last_4: str
    card: dict[str, Any] | None


@dataclass(frozen=True)
class PendingCharge:
    """A pending payment waiting for settle_pending."""

    source: ChargeSource
    payment_id: str


def charge_source(
    method: PaymentMethod, instrument: Instrument | None, request: PaymentRequest
) -> ChargeSource:
    if instrument is not None:
        last_4 = instrument.token[-4:]
    else:
        assert request.card is not None
        last_4 = request.card.last_4
    return ChargeSource(
        method=method,
        instrument_type=request.instrument_type,
        token=request.token,
        token_last_4=last_4,
        card=card_details(instrument, request),
    )


def gateway_behavior(
    instrument: Instrument | None, request: PaymentRequest, now: datetime
) -> Behavior:
    """Return the gateway's outcome: None, "pending" or a decline code."""
    if instrument is None:
        assert request.card is not None
        card = request.card
        expired = (card.expiry_year, card.expiry_month) < (now.year, now.month)
        return 30103 if expired else None
    if instrument.is_expired(now):
        return 30103
    return instrument.behavior


def card_details(
    instrument: Instrument | None, request: PaymentRequest
) -> dict[str, Any] | None:
    """Return the credit_card object of a transaction, None for other methods."""
    if request.card is not None:
        return {
            "card_type": None,
            "card_iin": None,
            "card_last4": request.card.last_4,
            "card_expiry_month": request.card.expiry_month,
            "card_expiry_year": request.card.expiry_year,
        }
    if instrument is None or instrument.kind != STORED_CARD:
        return None
    return {
        "card_type": instrument.brand.lower(),
        "card_iin": instrument.iin,
        "card_last4": instrument.last_4,
        "card_expiry_month": instrument.expiry_month,
        "card_expiry_year": instrument.expiry_year,
    }


def charged_amount(order: Order) -> Decimal:
    """Return the order total rounded to the currency's minor unit."""
    minor_units = to_minor_units(order.total_inc_tax, order.currency)
    return from_minor_units(minor_units, order.currency)


def record_transaction(
    store: Store,
    order: Order,
    source: ChargeSource,
    now: datetime,
    *,
    event: str,
    status: str = "ok",
) -> Transaction:
    """Add a V3 transaction for the order and return it."""
    gateway = source.method.gateway
    transaction = Transaction(
        id=store.take_transaction_id(),
        order_id=order.id,
        event=event,
        method="token" if source.token is not None else "credit_card",
        amount=charged_amount(order),
        currency=order.currency,
        gateway=gateway,
        gateway_transaction_id=f"{gateway}_{secrets.token_hex(8)}",
        payment_method_id=source.method.id,
        payment_instrument_token=source.token,
        date_created=now,
        card=source.card,
        status=status,
    )
    store.transactions.setdefault(order.id, []).append(transaction)
    return transaction


def ledger_entry(
    order: Order, source: ChargeSource, payment_id: str, now: datetime
) -> LedgerEntry:
    return LedgerEntry(
        store_hash=order.store_hash,
        order_id=order.id,
        amount=to_minor_units(order.total_inc_tax, order.currency),
        currency=order.currency,
        token_last_4=source.token_last_4,
        instrument_type=source.instrument_type,
        payment_method_id=source.method.id,
        transaction_id=payment_id,
        charged_at=now,
    )


def capture(
    store: Store, order: Order, source: ChargeSource, payment_id: str, now: datetime
) -> LedgerEntry:
    """Apply a successful purchase to the order; return its ledger entry."""
    transaction = record_transaction(store, order, source, now, event="purchase")
    set_payment(order, AWAITING_FULFILLMENT, "captured", transaction, now)
    order.payment_method = source.method.name
    return ledger_entry(order, source, payment_id, now)


def hold_pending(
    store: Store, order: Order, source: ChargeSource, now: datetime
) -> str:
    """Record a pending payment on the order; return the payment id."""
    payment_id = str(uuid.uuid4())
    transaction = record_transaction(store, order, source, now, event="pending")
    set_payment(order, AWAITING_PAYMENT, "pending", transaction, now)
    order.payment_method = source.method.name
    store.pending[order.id] = PendingCharge(source, payment_id)
    return payment_id


def settle(
    store: Store, order: Order, outcome: str, now: datetime
) -> LedgerEntry | None:
    """Settle the order's pending payment; return a ledger entry on success."""
    pending = store.pending.pop(order.id)
    if outcome == "success":
        return capture(store, order, pending.source, pending.payment_id, now)
    transaction = record_transaction(
        store, order, pending.source, now, event="purchase", status="error"
    )
    set_payment(order, DECLINED, "declined", transaction, now)
    return None


def set_payment(
    order: Order,
    status_id: int,
    payment_status: str,
    transaction: Transaction,
    now: datetime,
) -> None:
    order.status_id = status_id
    order.payment_status = payment_status
    order.payment_provider_id = transaction.gateway_transaction_id
    order.date_modified = now
