from __future__ import annotations

from decimal import Decimal

import pytest

from rebill.errors import InvalidInput
from rebill.money import (
    MAX_MINOR_UNITS,
    currency_exponent,
    format_amount,
    format_minor_units,
    from_minor_units,
    parse_amount,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3)],
    ids=["usd", "eur", "jpy", "kwd"],
)
def test_currency_exponent_known_codes(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize(
    ("code", "message_part"),
    [
        ("ZZZ", "unknown currency code 'ZZZ'"),
        ("usd", "write it as 'USD'"),
        ("US", "unknown currency code 'US'"),
        ("", "unknown currency code ''"),
    ],
    ids=["unknown", "lower-case", "two-letters", "empty"],
)
def test_currency_exponent_rejects_code(code: str, message_part: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        currency_exponent(code, record="line 4", field="currency")

    assert caught.value.record == "line 4"
    assert caught.value.field == "currency"
    assert message_part in caught.value.message


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (10, "USD", "10.00"),
        ("12.34", "USD", "12.34"),
        ("12.3", "USD", "12.30"),
        (10.1, "USD", "10.10"),
        (0.3, "USD", "0.30"),
        (Decimal("7.5"), "USD", "7.50"),
        ("0", "USD", "0.00"),
        ("10.990", "USD", "10.99"),
        ("1200", "JPY", "1200"),
        ("5.00", "JPY", "5"),
        (1.234, "KWD", "1.234"),
        ("0.001", "KWD", "0.001"),
    ],
    ids=[
        "int",
        "string",
        "string-one-decimal",
        "float-repr",
        "float-not-binary",
        "decimal",
        "zero",
        "trailing-zero",
        "jpy-int-string",
        "jpy-zero-decimals",
        "kwd-float",
        "kwd-smallest",
    ],
)
def test_parse_amount_accepts(value: object, currency: str, expected: str) -> None:
    amount = parse_amount(value, currency, record="record 1", field="price")

    assert isinstance(amount, Decimal)
    assert str(amount) == expected


@pytest.mark.parametrize(
    ("value", "currency", "message_part"),
    [
        (True, "USD", "not a boolean"),
        (None, "USD", "not null"),
        ([1], "USD", "not an array"),
        (float("nan"), "USD", "finite"),
        (float("inf"), "USD", "finite"),
        (Decimal("NaN"), "USD", "finite"),
        ("-1.00", "USD", "'-1.00': it must not be negative"),
        (-3, "USD", "-3: it must not be negative"),
        ("ten", "USD", "'ten'"),
        ("1e3", "USD", "'1e3'"),
        (" 12", "USD", "' 12'"),
        ("10.999", "USD", "'10.999': USD amounts have at most 2 decimal places"),
        (0.001, "USD", "0.001: USD amounts have at most 2 decimal places"),
        ("5.5", "JPY", "'5.5': JPY amounts have no decimal places"),
        ("1.2345", "KWD", "KWD amounts have at most 3 decimal places"),
        ("1" + "0" * 30, "USD", "larger than rebill can store"),
    ],
    ids=[
        "bool",
        "null",
        "array",
        "nan",
        "infinity",
        "decimal-nan",
        "negative-string",
        "negative-int",
        "words",
        "exponent",
        "whitespace",
        "usd-three-decimals",
        "usd-float-three-decimals",
        "jpy-decimals",
        "kwd-four-decimals",
        "too-large",
    ],
)
def test_parse_amount_rejects(value: object, currency: str, message_part: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_amount(value, currency, record="line 7", field="shipping_cost_inc_tax")

    assert caught.value.record == "line 7"
    assert caught.value.field == "shipping_cost_inc_tax"
    assert message_part in caught.value.message


def test_parse_amount_unknown_currency() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_amount("1.00", "XYZ", record="line 2", field="price_ex_tax")

    assert caught.value.record == "line 2"
    assert caught.value.field == "currency"
    assert "'XYZ'" in caught.value.message


def test_parse_amount_largest_storable() -> None:
    largest = format_minor_units(MAX_MINOR_UNITS, "USD").split()[0]

    amount = parse_amount(largest, "USD", record="r", field="f")

    assert to_minor_units(amount, "USD") == MAX_MINOR_UNITS


@pytest.mark.parametrize(
    ("amount", "currency", "minor_units"),
    [
        (Decimal("12.34"), "USD", 1234),
        (Decimal("12.3"), "USD", 1230),
        (Decimal("0.01"), "USD", 1),
        (Decimal("19.990"), "USD", 1999),
        (Decimal("1200"), "JPY", 1200),
        (Decimal("1.234"), "KWD", 1234),
        (Decimal("-2.50"), "USD", -250),
        (Decimal("1E+2"), "USD", 10000),
    ],
    ids=[
        "usd",
        "usd-one-decimal",
        "usd-cent",
        "usd-trailing-zero",
        "jpy",
        "kwd",
        "negative",
        "exponent-form",
    ],
)
def test_to_minor_units_exact(amount: Decimal, currency: str, minor_units: int) -> None:
    assert to_minor_units(amount, currency) == minor_units


def test_to_minor_units_rejects_extra_decimals() -> None:
    with pytest.raises(ValueError, match="JPY amounts have no decimal places"):
        to_minor_units(Decimal("10.5"), "JPY")


def test_to_minor_units_rejects_float() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        to_minor_units(12.34, "USD")  # type: ignore[arg-type]


def test_to_minor_units_beyond_decimal_precision() -> None:
    # 30 digits exceed the default Decimal context precision of 28.
    amount = Decimal("123456789012345678901234567.891")

    assert to_minor_units(amount, "KWD") == 123456789012345678901234567891


@pytest.mark.parametrize(
    ("minor_units", "currency", "text"),
    [
        (1234, "USD", "12.34 USD"),
        (5, "USD", "0.05 USD"),
        (0, "USD", "0.00 USD"),
        (-250, "USD", "-2.50 USD"),
        (1200, "JPY", "1200 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (5, "KWD", "0.005 KWD"),
    ],
    ids=["usd", "usd-cents", "zero", "negative", "jpy", "kwd", "kwd-fils"],
)
def test_format_minor_units(minor_units: int, currency: str, text: str) -> None:
    assert format_minor_units(minor_units, currency) == text


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
def test_minor_units_round_trip(currency: str) -> None:
    for minor_units in (0, 1, 9, 10, 99, 100, 101, 123456, 10**15 + 7):
        amount = from_minor_units(minor_units, currency)
        parsed = parse_amount(str(amount), currency, record="r", field="f")

        assert to_minor_units(parsed, currency) == minor_units


def test_format_amount_pads_decimals() -> None:
    assert format_amount(Decimal("10.5"), "USD") == "10.50"
    assert format_amount(Decimal("10"), "KWD") == "10.000"
    assert format_amount(Decimal("1200.00"), "JPY") == "1200"
