"""Charges the sandbox took: V3 order transactions and the test ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass
class Transaction:
    """A V3 order transaction. `amount` is in major units, as the API returns it."""

    id: int
    order_id: int
    event: str  # "purchase" or "pending"
    method: str  # "token" for stored instruments, "credit_card" for raw cards
    amount: Decimal
    currency: str
    gateway: str
    gateway_transaction_id: str
    payment_method_id: str
    payment_instrument_token: str | None
    date_created: datetime
    card: dict[str, Any] | None = None
    status: str = "ok"


def render_transaction(transaction: Transaction) -> dict[str, Any]:
    """Render a transaction in the V3 shape, with null for absent values."""
    return {
        "id": transaction.id,
        "order_id": str(transaction.order_id),
        "event": transaction.event,
        "method": transaction.method,
        # The V3 API sends amounts as JSON numbers in major units.
        "amount": float(transaction.amount),
        "currency": transaction.currency,
        "gateway": transaction.gateway,
        "gateway_transaction_id": transaction.gateway_transaction_id,
        "payment_method_id": transaction.payment_method_id,
        "date_created": transaction.date_created.isoformat(),
        "test": True,
        "status": transaction.status,
        "fraud_review": False,
        "reference_transaction_id": None,
        "offline": None,
        "custom": None,
        "payment_instrument_token": transaction.payment_instrument_token,
        "provider_instrument_token": None,
        "provider_customer_id": None,
        "avs_result": None,
        "cvv_result": None,
        "credit_card": transaction.card,
        "gift_certificate": None,
        "store_credit": None,
        "custom_provider_field_result": None,
    }


@dataclass(frozen=True)
class LedgerEntry:
    """One successful charge, for tests that count money taken."""

    store_hash: str
    order_id: int
    amount: int  # minor units
    currency: str
    token_last_4: str
    instrument_type: str
    payment_method_id: str
    transaction_id: str  # the id Process Payment returned
    charged_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "store_hash": self.store_hash,
            "order_id": self.order_id,
            "amount": self.amount,
            "currency": self.currency,
            "token_last_4": self.token_last_4,
            "instrument_type": self.instrument_type,
            "payment_method_id": self.payment_method_id,
            "transaction_id": self.transaction_id,
            "charged_at": self.charged_at.isoformat(),
        }
