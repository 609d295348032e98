"""Stored payment instruments and the payment methods that list them.

Each store offers a card method, a PayPal method and a bank-account method. The
bank-account method and its instrument shape inside Get Payment Methods are not
documented by BigCommerce: the sandbox reuses the Customers API's
stored_bank_account shape under `braintree.ach`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STORED_CARD = "stored_card"
STORED_PAYPAL_ACCOUNT = "stored_paypal_account"
STORED_BANK_ACCOUNT = "stored_bank_account"
INSTRUMENT_KINDS = (STORED_CARD, STORED_PAYPAL_ACCOUNT, STORED_BANK_ACCOUNT)

# The outcome an instrument gives a charge. None succeeds, "pending" returns
# pending, and an integer is the BigCommerce error code of a decline.
Behavior = int | str | None


@dataclass(frozen=True)
class PaymentMethod:
    """A payment method of a store, as Get Payment Methods lists it."""

    id: str
    name: str
    type: str
    kind: str  # the stored-instrument kind this method charges
    gateway: str
    supported_instruments: tuple[str, ...]


CARD_BRANDS = ("VISA", "MASTERCARD", "AMEX", "DISCOVER", "JCB", "DINERS_CLUB")

DEFAULT_METHODS = (
    PaymentMethod(
        "stripe.card",
        "Stripe",
        "card",
        STORED_CARD,
        "stripe",
        (*CARD_BRANDS, "STORED_CARD"),
    ),
    PaymentMethod(
        "braintree.paypal",
        "Braintree (PayPal)",
        "paypal",
        STORED_PAYPAL_ACCOUNT,
        "braintree",
        ("STORED_PAYPAL_ACCOUNT",),
    ),
    PaymentMethod(
        "braintree.ach",
        "Braintree (ACH)",
        "bank_account",
        STORED_BANK_ACCOUNT,
        "braintree",
        ("STORED_BANK_ACCOUNT",),
    ),
)

DEFAULT_METHOD_BY_KIND = {method.kind: method.id for method in DEFAULT_METHODS}


def extra_method(method_id: str, kind: str) -> PaymentMethod:
    """Build a method for an id that an instrument names but no default offers."""
    template = next(m for m in DEFAULT_METHODS if m.kind == kind)
    provider = method_id.split(".", 1)[0]
    return PaymentMethod(
        method_id,
        provider.capitalize(),
        template.type,
        kind,
        provider,
        template.supported_instruments,
    )


# First six digits that the sandbox reports for each card brand.
BRAND_IIN = {
    "VISA": "424242",
    "MASTERCARD": "555555",
    "AMEX": "378282",
    "DISCOVER": "601111",
    "JCB": "353011",
    "DINERS_CLUB": "305693",
}


def card_expired(expiry_month: int, expiry_year: int, now: datetime) -> bool:
    """Return True when a card's last valid month is before `now`'s month."""
    return (expiry_year, expiry_month) < (now.year, now.month)


def new_token() -> str:
    """Return a new instrument token: 64 lowercase hex characters."""
    return secrets.token_hex(32)


@dataclass
class Instrument:
    """A customer's stored card, PayPal account or bank account."""

    token: str
    customer_id: int
    kind: str
    payment_method_id: str
    brand: str = "VISA"
    last_4: str = "4242"
    expiry_month: int = 12
    expiry_year: int = 2030
    email: str | None = None
    is_default: bool = False
    behavior: Behavior = None
    issuer: str = "SANDBOX01"  # bank accounts only

    def is_expired(self, now: datetime) -> bool:
        """Return True when a card's last valid month is before `now`'s month."""
        if self.kind != STORED_CARD:
            return False
        return card_expired(self.expiry_month, self.expiry_year, now)

    @property
    def iin(self) -> str:
        return BRAND_IIN.get(self.brand.upper(), "400000")

    @property
    def masked_account_number(self) -> str:
        return f"XXXXX{self.last_4}"


def render_for_methods(instrument: Instrument) -> dict[str, Any]:
    """Render an instrument as Get Payment Methods lists it."""
    if instrument.kind == STORED_CARD:
        return {
            "type": STORED_CARD,
            "brand": instrument.brand,
            "expiry_month": instrument.expiry_month,
            "expiry_year": instrument.expiry_year,
            "issuer_identification_number": instrument.iin,
            "last_4": instrument.last_4,
            "token": instrument.token,
            "is_default": instrument.is_default,
        }
    if instrument.kind == STORED_PAYPAL_ACCOUNT:
        return {
            "type": STORED_PAYPAL_ACCOUNT,
            "email": instrument.email,
            "token": instrument.token,
            "is_default": instrument.is_default,
        }
    return {
        "type": STORED_BANK_ACCOUNT,
        "token": instrument.token,
        "is_default": instrument.is_default,
        "masked_account_number": instrument.masked_account_number,
        "issuer": instrument.issuer,
    }


def render_for_customers(instrument: Instrument) -> dict[str, Any]:
    """Render an instrument as the Customers API's stored-instruments list does."""
    body = render_for_methods(instrument)
    if instrument.kind == STORED_CARD:
        # The sandbox stores no billing address for cards.
        body["billing_address"] = None
    return body


def render_method(method: PaymentMethod, instruments: list[Instrument]) -> dict:
    """Render a payment method with the instruments it may charge for an order."""
    return {
        "id": method.id,
        "name": method.name,
        "test_mode": True,
        "type": method.type,
        "supported_instruments": [
            {"instrument_type": name, "verification_value_required": False}
            for name in method.supported_instruments
        ],
        "stored_instruments": [render_for_methods(item) for item in instruments],
    }
