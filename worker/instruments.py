"""Choose which of a customer's stored instruments a renewal charges."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date

from rebill.client import StoredInstrument

CHARGEABLE_TYPES = ("stored_card", "stored_paypal_account", "stored_bank_account")


@dataclass(frozen=True)
class Choice:
    instrument: StoredInstrument | None
    reason: str  # why this one, or why none


def fingerprint(token: str) -> str:
    """Return the SHA-256 of an instrument token, safe to store and compare."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_expired(instrument: StoredInstrument, today: date) -> bool:
    """A card is valid through the last day of its expiry month."""
    if instrument.expiry_year is None or instrument.expiry_month is None:
        return False
    return (today.year, today.month) > (instrument.expiry_year, instrument.expiry_month)


def choose_instrument(
    offered: Sequence[StoredInstrument],
    *,
    preferred_method: str | None,
    preferred_token: str | None,
    today: date,
    excluded: Collection[str] = (),
) -> Choice:
    """Pick the preferred instrument if offered, else the default, else the first.

    Expired cards, instrument types the Payments API cannot charge and
    instruments whose fingerprint is in `excluded` (declined earlier in the
    same cycle) are never chosen.
    """
    if not offered:
        return Choice(None, "the customer has no stored instrument for this order")
    usable = usable_instruments(offered, today, excluded)
    if not usable:
        return Choice(
            None,
            f"none of the customer's {len(offered)} stored instrument(s) can be "
            "charged (declined in this cycle, expired or unsupported type)",
        )
    if preferred_token:
        for item in usable:
            same_method = preferred_method in (None, item.payment_method_id)
            if item.token == preferred_token and same_method:
                return Choice(item, "preferred instrument")
    for item in usable:
        if item.is_default:
            return Choice(item, "customer's default instrument")
    return Choice(usable[0], "first usable stored instrument")


def usable_instruments(
    offered: Sequence[StoredInstrument], today: date, excluded: Collection[str] = ()
) -> list[StoredInstrument]:
    """Return the offered instruments that a renewal may charge, in API order."""
    return [
        item
        for item in offered
        if item.type in CHARGEABLE_TYPES
        and not is_expired(item, today)
        and fingerprint(item.token) not in excluded
    ]
