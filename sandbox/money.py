"""Money as BigCommerce's V2 API takes and returns it, always as Decimal."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FOUR_PLACES = Decimal("0.0001")

# ISO-4217 currencies without minor units; every other currency has two.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)


def parse_money(value: object) -> Decimal | None:
    """Return `value` as a Decimal, or None when it is not a non-negative amount.

    V2 accepts a float, an integer or a numeric string. Booleans, NaN, infinity
    and negative amounts are invalid.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return amount


def format_money(amount: Decimal) -> str:
    """Format an amount the way V2 returns money: a string with four decimals."""
    return str(amount.quantize(FOUR_PLACES, rounding=ROUND_HALF_UP))


def currency_exponent(currency: str) -> int:
    """Return how many decimals the currency's minor unit has."""
    return 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Convert an amount in major units to an integer of minor units (half up)."""
    scaled = amount.scaleb(currency_exponent(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor_units(amount: int, currency: str) -> Decimal:
    """Convert an integer of minor units back to a Decimal in major units."""
    return Decimal(amount).scaleb(-currency_exponent(currency))
