"""Choose which of a customer's stored instruments a renewal charges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from rebill.client import StoredInstrument

CHARGEABLE_TYPES = ("stored_card", "stored_paypal_account", "stored_bank_account")


@dataclass(frozen=True)
class Choice:
    instrument: StoredInstrument | None
    reason: str  # why this one, or why none


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
) -> Choice:
    """Pick the preferred instrument if offered, else the default, else the first.

    Expired cards and instrument types the Payments API cannot charge are never
    chosen.
    """
    if not offered:
        return Choice(None, "the customer has no stored instrument for this order")
    usable = [
        item
        for item in offered
        if item.type in CHARGEABLE_TYPES and not is_expired(item, today)
    ]
    if not usable:
        return Choice(
            None,
            f"none of the customer's {len(offered)} stored instrument(s) can be "
            "charged (expired or unsupported type)",
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
