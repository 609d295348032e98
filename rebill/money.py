"""Money amounts as Decimal and as integer minor units, checked against a currency.

rebill never represents money as a float. Merchant input becomes a Decimal with
exactly the currency's number of decimal places, and amounts sent to the
Payments API or stored are integers in minor units (cents for USD, yen for JPY,
fils for KWD). Conversions here are exact: an amount that does not fit the
currency's decimals is rejected, never rounded.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal

from babel.numbers import get_currency_precision, list_currencies

from rebill.errors import InvalidInput
from rebill.validation import json_type_name

# Minor-unit amounts must fit a signed 64-bit integer, the widest integer column
# type in SQLite and PostgreSQL.
MAX_MINOR_UNITS = 2**63 - 1

_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def currency_exponent(
    code: str, *, record: str = "input", field: str = "currency"
) -> int:
    """Return the number of decimal places of an ISO 4217 currency (USD 2, JPY 0).

    Raises InvalidInput naming `code` when babel does not list it as a currency.
    `record` and `field` name where the code came from.

    NOTE: the exponent comes from CLDR through babel and can differ from ISO
    4217's minor unit (babel 2.19 gives HUF 0 decimal places). BigCommerce does
    not document which exponent it applies to a currency.
    """
    if not isinstance(code, str):
        raise InvalidInput(
            record,
            field,
            f"currency must be a string such as 'USD', not {json_type_name(code)}",
        )
    if not _CURRENCY_CODE.fullmatch(code) or code not in _known_currencies():
        raise InvalidInput(record, field, _unknown_currency_message(code))
    return get_currency_precision(code)


@functools.cache
def _known_currencies() -> frozenset[str]:
    # babel's get_currency_precision returns 2 for any unknown code, so the code
    # is checked against babel's list of currencies first.
    return frozenset(list_currencies())


def _unknown_currency_message(code: str) -> str:
    upper = code.strip().upper()
    if upper != code and upper in _known_currencies():
        return f"invalid currency code {code!r}: write it as {upper!r}"
    return (
        f"unknown currency code {code!r}: use an ISO 4217 code in capital "
        "letters, such as 'USD', 'EUR' or 'JPY'"
    )


def parse_amount(value: object, currency: str, *, record: str, field: str) -> Decimal:
    """Parse a non-negative money amount from merchant input into an exact Decimal.

    Accepts an int, a Decimal, a string of digits with an optional decimal
    point ("12.34"), or a float, which is read through its repr so 10.1 stays
    10.1. The result has exactly the currency's number of decimal places.
    Raises InvalidInput for booleans, NaN, infinity, negative and non-numeric
    values, and for more decimals than the currency allows (10.999 USD, 5.5 JPY).
    Trailing zeros are fine: "5.00" JPY is 5.
    """
    exponent = currency_exponent(currency, record=record)
    amount = _to_decimal(value, record=record, field=field)
    if not amount.is_finite():
        raise InvalidInput(
            record, field, f"invalid amount {_show(value)}: it must be a finite number"
        )
    if amount < 0:
        raise InvalidInput(
            record, field, f"invalid amount {_show(value)}: it must not be negative"
        )

    minor_units = _exact_minor_units(amount, exponent)
    if minor_units is None:
        raise InvalidInput(
            record,
            field,
            f"invalid amount {_show(value)}: {_decimals_rule(currency, exponent)}",
        )
    if minor_units > MAX_MINOR_UNITS:
        raise InvalidInput(
            record,
            field,
            f"invalid amount {_show(value)}: it is larger than rebill can store "
            f"({format_minor_units(MAX_MINOR_UNITS, currency)})",
        )
    return _from_minor_units(minor_units, exponent)


def _to_decimal(value: object, *, record: str, field: str) -> Decimal:
    # bool is a subclass of int, so it is rejected before the int case.
    if isinstance(value, bool) or value is None:
        raise InvalidInput(
            record,
            field,
            f"invalid amount: expected a number such as 12.34, not "
            f"{json_type_name(value)}",
        )
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        return _parse_decimal_string(value, record=record, field=field)
    raise InvalidInput(
        record,
        field,
        f"invalid amount: expected a number such as 12.34, not {json_type_name(value)}",
    )


def _parse_decimal_string(text: str, *, record: str, field: str) -> Decimal:
    # Only plain digits are accepted, so "1e3", "1_000" and " 12" are rejected
    # even though Decimal() would read them.
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise InvalidInput(
            record,
            field,
            f"invalid amount {text!r}: write digits with an optional decimal "
            "point, such as '12.34'",
        )
    return Decimal(text)


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _decimals_rule(currency: str, exponent: int) -> str:
    if exponent == 0:
        return f"{currency} amounts have no decimal places"
    return f"{currency} amounts have at most {exponent} decimal places"


def _exact_minor_units(amount: Decimal, exponent: int) -> int | None:
    """Return `amount` in minor units, or None when it has too many decimals.

    Works on the digits and the power of ten directly because Decimal
    arithmetic rounds to the context precision (28 digits by default).
    """
    sign, digits, power = amount.as_tuple()
    if not isinstance(power, int):
        raise ValueError(f"amount {amount} is not a finite number")
    coefficient = int("".join(str(digit) for digit in digits))
    shift = power + exponent
    if shift >= 0:
        minor_units = coefficient * 10**shift
    else:
        minor_units, remainder = divmod(coefficient, 10**-shift)
        if remainder:
            return None
    return -minor_units if sign else minor_units


def _from_minor_units(minor_units: int, exponent: int) -> Decimal:
    digits = tuple(int(digit) for digit in str(abs(minor_units)))
    return Decimal((1 if minor_units < 0 else 0, digits, -exponent))


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Convert an amount to integer minor units of `currency` (12.34 USD -> 1234).

    Raises ValueError when the amount is not finite or has more decimals than
    the currency allows, because rounding money silently would charge a
    different amount than the one stored.
    """
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"amount {amount} is not a finite number")
    exponent = currency_exponent(currency)
    minor_units = _exact_minor_units(amount, exponent)
    if minor_units is None:
        raise ValueError(
            f"amount {amount} does not fit {currency}: "
            f"{_decimals_rule(currency, exponent)}"
        )
    return minor_units


def from_minor_units(amount_minor: int, currency: str) -> Decimal:
    """Convert integer minor units to a Decimal with the currency's decimals."""
    return _from_minor_units(amount_minor, currency_exponent(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    """Format an amount with exactly the currency's decimals ("10.50", "1200").

    Raises ValueError like to_minor_units when the amount has more decimals
    than the currency allows.
    """
    return str(from_minor_units(to_minor_units(amount, currency), currency))


def format_minor_units(amount_minor: int, currency: str) -> str:
    """Format minor units for people to read: 1234 USD -> "12.34 USD"."""
    return f"{from_minor_units(amount_minor, currency)} {currency}"
