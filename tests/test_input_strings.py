"""Control characters, lengths and integer ranges in merchant input.

PostgreSQL rejects NUL in text and values beyond a column's size, so the
parser must reject them first, naming the field, or the API answers 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from models import MAX_INTEGER, Store, Subscription
from rebill.errors import InvalidInput
from rebill.subscription_input import (
    MAX_CRON_LENGTH,
    MAX_PAYMENT_METHOD_ID_LENGTH,
    MAX_REFERENCE_LENGTH,
    MAX_STORE_HASH_LENGTH,
    parse_subscription,
)
from tests.test_subscription_input import record


def parse(**changes: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_subscription(record(**changes), label="line 1", default_currency="USD")
    return caught.value


def with_template_change(path: tuple[str | int, ...], value: str) -> dict[str, Any]:
    changed = record()
    target: Any = changed["order_template"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    "field",
    ["store", "cron", "timezone", "currency", "reference", "payment_method_id"],
)
@pytest.mark.parametrize("character", ["\x00", "\n", "\x1b", "\x7f", "\x85"])
def test_control_character_names_field(field: str, character: str) -> None:
    value = record()[field] + character

    error = parse(**{field: value})

    assert error.field == field
    assert "control character" in error.message
    assert f"U+{ord(character):04X}" in error.message


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("billing_address", "city"), "order_template.billing_address.city"),
        (("billing_address", "street_2"), "order_template.billing_address.street_2"),
        (("products", 0, "name"), "order_template.products[0].name"),
    ],
    ids=["city", "optional-street", "product-name"],
)
def test_control_character_in_template(path: tuple, field: str) -> None:
    changed = with_template_change(path, "Den\x00ver")

    with pytest.raises(InvalidInput) as caught:
        parse_subscription(changed, label="line 1", default_currency="USD")

    assert caught.value.field == field
    assert "U+0000" in caught.value.message


def test_control_character_position_is_one_based() -> None:
    error = parse(reference="ab\x00")

    assert "character 3" in error.message


def test_nul_alone_is_rejected_not_missing() -> None:
    error = parse(payment_method_id="\x00")

    assert error.field == "payment_method_id"
    assert "U+0000" in error.message


def test_instrument_token_nul_hides_token() -> None:
    error = parse(instrument_token="\x00" + "a" * 63)

    assert error.field == "instrument_token"
    assert "a" * 8 not in str(error)


@pytest.mark.parametrize(
    ("field", "limit", "value"),
    [
        ("reference", MAX_REFERENCE_LENGTH, "r" * (MAX_REFERENCE_LENGTH + 1)),
        (
            "payment_method_id",
            MAX_PAYMENT_METHOD_ID_LENGTH,
            "m" * (MAX_PAYMENT_METHOD_ID_LENGTH + 1),
        ),
        ("cron", MAX_CRON_LENGTH, ",".join(str(m) for m in range(60)) + " * * * *"),
    ],
    ids=["reference", "payment_method_id", "cron"],
)
def test_too_long_value_names_limit(field: str, limit: int, value: str) -> None:
    assert len(value) > limit

    error = parse(**{field: value})

    assert error.field == field
    assert f"at most {limit}" in error.message


def test_value_at_length_limit_is_accepted() -> None:
    spec = parse_subscription(
        record(reference="r" * MAX_REFERENCE_LENGTH),
        label="line 1",
        default_currency="USD",
    )

    assert spec.reference == "r" * MAX_REFERENCE_LENGTH


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("reference", MAX_REFERENCE_LENGTH),
        ("payment_method_id", MAX_PAYMENT_METHOD_ID_LENGTH),
        ("cron", MAX_CRON_LENGTH),
    ],
)
def test_length_limits_match_columns(name: str, limit: int) -> None:
    assert Subscription.__table__.c[name].type.length == limit


def test_store_hash_limit_matches_column() -> None:
    assert Store.__table__.c["store_hash"].type.length == MAX_STORE_HASH_LENGTH


def test_customer_id_beyond_integer_column() -> None:
    error = parse(customer_id=MAX_INTEGER + 1)

    assert error.field == "customer_id"
    assert str(MAX_INTEGER) in error.message


def test_customer_id_at_integer_limit_is_accepted() -> None:
    spec = parse_subscription(
        record(customer_id=MAX_INTEGER), label="line 1", default_currency="USD"
    )

    assert spec.customer_id == MAX_INTEGER
