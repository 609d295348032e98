from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebill.errors import InvalidInput, InvalidInputFile
from rebill.subscription_input import (
    SubscriptionSpec,
    parse_subscription,
    parse_subscription_file,
    read_records,
)

TOKEN = "3f9c" * 16
OTHER_TOKEN = "0123456789abcdef" * 4


def template() -> dict[str, Any]:
    return {
        "billing_address": {
            "first_name": "Tomas",
            "last_name": "Brandt",
            "street_1": "12 Kiln Street",
            "city": "Denver",
            "state": "Colorado",
            "zip": "80202",
            "country_iso2": "US",
            "email": "tomas.brandt@example.com",
        },
        "products": [
            {
                "name": "Weekly Bread Share",
                "quantity": 1,
                "price_inc_tax": "16.35",
                "price_ex_tax": "15.00",
            }
        ],
    }


def record(**changes: object) -> dict[str, Any]:
    """Return a valid record with `changes` applied. A None value deletes the key."""
    result: dict[str, Any] = {
        "store": "abc123xyz",
        "customer_id": 42,
        "cron": "0 9 1 * *",
        "timezone": "America/Denver",
        "currency": "USD",
        "order_template": template(),
        "reference": "bread-42",
        "payment_method_id": "stripe.card",
        "instrument_token": TOKEN,
        "end_of_dunning_action": "skip",
        "first_billing_at": "2025-08-01T09:00:00-06:00",
    }
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def test_parse_full_record() -> None:
    spec = parse_subscription(record(), label="line 1", default_currency=None)

    assert spec.store_hash == "abc123xyz"
    assert spec.customer_id == 42
    assert spec.cron == "0 9 1 * *"
    assert spec.timezone == "America/Denver"
    assert spec.currency == "USD"
    assert spec.reference == "bread-42"
    assert spec.payment_method_id == "stripe.card"
    assert spec.instrument_token == TOKEN
    assert spec.end_of_dunning_action == "skip"
    assert spec.first_billing_at == datetime(2025, 8, 1, 15, 0, tzinfo=UTC)
    assert spec.order_template.total_minor_units("USD") == 1635


def test_parse_minimal_record() -> None:
    minimal = {
        "store": "abc123xyz",
        "customer_id": 42,
        "cron": "@monthly",
        "timezone": "UTC",
        "order_template": template(),
    }

    spec = parse_subscription(minimal, label="line 1", default_currency="USD")

    assert spec.currency == "USD"
    assert spec.reference is None
    assert spec.payment_method_id is None
    assert spec.instrument_token is None
    assert spec.end_of_dunning_action is None
    assert spec.first_billing_at is None


def test_record_currency_wins_over_default() -> None:
    raw = record(currency="EUR")

    spec = parse_subscription(raw, label="line 1", default_currency="USD")

    assert spec.currency == "EUR"


def test_first_billing_at_zulu_is_utc() -> None:
    raw = record(first_billing_at="2025-08-01T15:00:00Z")

    spec = parse_subscription(raw, label="line 1", default_currency=None)

    assert spec.first_billing_at == datetime(2025, 8, 1, 15, 0, tzinfo=UTC)
    assert spec.first_billing_at.utcoffset() is not None


def test_repr_hides_instrument_token() -> None:
    spec = parse_subscription(record(), label="line 1", default_currency=None)

    assert TOKEN not in repr(spec)


BAD_RECORDS: list[tuple[str, dict[str, Any], str | None, str, str]] = [
    # (id, record, default currency, field, part of the message)
    ("store-missing", record(store=None), None, "store", "missing"),
    ("store-number", record(store=1234), None, "store", "must be a string"),
    (
        "store-with-slash",
        record(store="abc/../xyz"),
        None,
        "store",
        "invalid store hash 'abc/../xyz'",
    ),
    ("customer-missing", record(customer_id=None), None, "customer_id", "missing"),
    ("customer-guest", record(customer_id=0), None, "customer_id", "0 is a guest"),
    (
        "customer-negative",
        record(customer_id=-3),
        None,
        "customer_id",
        "must be 1 or more",
    ),
    (
        "customer-string",
        record(customer_id="42"),
        None,
        "customer_id",
        "must be a whole number, not a string",
    ),
    (
        "customer-bool",
        record(customer_id=False),
        None,
        "customer_id",
        "not a boolean",
    ),
    ("cron-missing", record(cron=None), None, "cron", "missing"),
    (
        "cron-minute",
        record(cron="61 * * * *"),
        None,
        "cron",
        "minute '61' is invalid: minute must be 0-59",
    ),
    (
        "cron-hour",
        record(cron="0 24 * * *"),
        None,
        "cron",
        "hour '24' is invalid: hour must be 0-23",
    ),
    (
        "cron-day-of-month",
        record(cron="0 9 0 * *"),
        None,
        "cron",
        "day of month '0' is invalid",
    ),
    (
        "cron-month",
        record(cron="0 9 1 13 *"),
        None,
        "cron",
        "month '13' is invalid: month must be 1-12",
    ),
    (
        "cron-day-of-week",
        record(cron="0 9 * * 8"),
        None,
        "cron",
        "day of week '8' is invalid",
    ),
    (
        "cron-month-name",
        record(cron="0 9 1 JANX *"),
        None,
        "cron",
        "month 'JANX' is invalid",
    ),
    (
        "cron-zero-step",
        record(cron="*/0 * * * *"),
        None,
        "cron",
        "minute '*/0' is invalid",
    ),
    ("cron-four-fields", record(cron="0 9 1 *"), None, "cron", "it has 4 fields"),
    (
        "cron-seconds-field",
        record(cron="0 0 9 1 * *"),
        None,
        "cron",
        "it has 6 fields but needs 5",
    ),
    ("cron-reboot", record(cron="@reboot"), None, "cron", "use @hourly"),
    ("cron-example", record(cron="61 * * * *"), None, "cron", "'0 9 1 * *'"),
    ("timezone-missing", record(timezone=None), None, "timezone", "missing"),
    (
        "timezone-unknown",
        record(timezone="Mars/Olympus"),
        None,
        "timezone",
        "unknown time zone 'Mars/Olympus': use an IANA time zone name such as "
        "'America/New_York'",
    ),
    (
        "timezone-case",
        record(timezone="america/denver"),
        None,
        "timezone",
        "did you mean 'America/Denver'?",
    ),
    (
        "timezone-offset",
        record(timezone="+02:00"),
        None,
        "timezone",
        "unknown time zone '+02:00'",
    ),
    (
        "timezone-machine-local",
        record(timezone="localtime"),
        None,
        "timezone",
        "unknown time zone 'localtime'",
    ),
    (
        "currency-missing-no-default",
        record(currency=None),
        None,
        "currency",
        "the store has no default currency",
    ),
    (
        "currency-unknown",
        record(currency="ABC"),
        None,
        "currency",
        "unknown currency code 'ABC'",
    ),
    (
        "default-currency-invalid",
        record(currency=None),
        "dollars",
        "currency",
        "the store's default currency is invalid",
    ),
    (
        "template-missing",
        record(order_template=None),
        None,
        "order_template",
        "missing",
    ),
    (
        "template-status-id",
        record(order_template={**template(), "status_id": 0}),
        None,
        "order_template.status_id",
        "rebill sets this field",
    ),
    (
        "template-jpy-decimals",
        record(currency="JPY"),
        None,
        "order_template.products[0].price_inc_tax",
        "'16.35': JPY amounts have no decimal places",
    ),
    ("reference-empty", record(reference=""), None, "reference", "must not be empty"),
    (
        "reference-padded",
        record(reference=" bread-42"),
        None,
        "reference",
        "starts or ends with whitespace",
    ),
    (
        "payment-method-space",
        record(payment_method_id="stripe card"),
        None,
        "payment_method_id",
        "must not contain whitespace",
    ),
    (
        "token-short",
        record(instrument_token="abc123"),
        None,
        "instrument_token",
        "invalid token of 6 characters",
    ),
    (
        "token-upper-case",
        record(instrument_token=TOKEN.upper()),
        None,
        "instrument_token",
        "characters other than 0-9 and a-f",
    ),
    (
        "token-number",
        record(instrument_token=12345),
        None,
        "instrument_token",
        "must be a string, not a number",
    ),
    (
        "dunning-action-unknown",
        record(end_of_dunning_action="retry"),
        None,
        "end_of_dunning_action",
        "invalid action 'retry': use one of pause, skip, cancel",
    ),
    (
        "first-billing-naive",
        record(first_billing_at="2025-08-01T09:00:00"),
        None,
        "first_billing_at",
        "has no UTC offset",
    ),
    (
        "first-billing-date-only",
        record(first_billing_at="2025-08-01"),
        None,
        "first_billing_at",
        "has no UTC offset",
    ),
    (
        "first-billing-garbage",
        record(first_billing_at="next tuesday"),
        None,
        "first_billing_at",
        "invalid date-time 'next tuesday'",
    ),
    (
        "first-billing-epoch",
        record(first_billing_at=1754060400),
        None,
        "first_billing_at",
        "must be a string, not a number",
    ),
    (
        "unknown-key",
        record(frequency="monthly"),
        None,
        "frequency",
        "unknown field",
    ),
    (
        "typo-key",
        record(time_zone="UTC"),
        None,
        "time_zone",
        "did you mean 'timezone'?",
    ),
]


@pytest.mark.parametrize(
    ("raw", "default_currency", "field", "message_part"),
    [case[1:] for case in BAD_RECORDS],
    ids=[case[0] for case in BAD_RECORDS],
)
def test_parse_rejects_record(
    raw: dict[str, Any], default_currency: str | None, field: str, message_part: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_subscription(raw, label="line 5", default_currency=default_currency)

    assert caught.value.record == "line 5"
    assert caught.value.field == field
    assert message_part in caught.value.message


@pytest.mark.parametrize(
    "cron",
    ["*/15 * * * *", "0 9 1-7 * MON", "30 6 L * *", "0 0 1 JAN,JUL *", "@weekly"],
    ids=["step", "day-range", "last-day", "month-names", "macro"],
)
def test_parse_accepts_cron(cron: str) -> None:
    spec = parse_subscription(record(cron=cron), label="line 1", default_currency=None)

    assert spec.cron == cron


@pytest.mark.parametrize("raw", [[], "text", None], ids=["array", "string", "null"])
def test_parse_rejects_non_object_record(raw: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_subscription(raw, label="record 2", default_currency=None)

    assert caught.value.record == "record 2"
    assert "must be a JSON object" in caught.value.message


@pytest.mark.parametrize(
    "changes",
    [
        {"instrument_token": TOKEN.upper()},
        {"instrument_token": TOKEN + "0"},
        {"instrument_token": TOKEN[:-1] + " "},
        {"customer_id": 0},
        {"cron": "61 * * * *"},
        {"unknown": TOKEN},
        {"order_template": {"products": []}},
    ],
    ids=[
        "token-upper",
        "token-long",
        "token-space",
        "guest",
        "cron",
        "unknown-key",
        "template",
    ],
)
def test_messages_never_contain_token(changes: dict[str, Any]) -> None:
    raw = record(**changes)
    with pytest.raises(InvalidInput) as caught:
        parse_subscription(raw, label="line 1", default_currency=None)

    for token in (TOKEN, TOKEN.upper(), TOKEN[:-1]):
        assert token not in str(caught.value)
        assert token not in caught.value.message


def write_json_lines(path: Path, lines: list[object]) -> Path:
    """Write each item as one JSON line. String items are written verbatim."""
    text = [item if isinstance(item, str) else json.dumps(item) for item in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def no_default(store_hash: str) -> str | None:
    return None


def test_json_array_file_labels(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.json"
    bad = record(reference="bread-43", customer_id=0, cron="0 9 32 * *")
    good = record(reference="bread-44")
    path.write_text(json.dumps([record(), bad, good]), encoding="utf-8")

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    errors = caught.value.errors
    assert [error.record for error in errors] == ["record 2", "record 2"]
    assert [error.field for error in errors] == ["customer_id", "cron"]
    assert caught.value.path == str(path)
    assert "2 error(s) in 1 record(s), nothing was imported" in str(caught.value)


def test_json_lines_file_labels(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [
            record(),
            "",
            record(reference="bread-43", timezone="Mars/Olympus"),
            record(reference="bread-44"),
            "   ",
            record(reference="bread-45", instrument_token="XYZ"),
        ],
    )

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    errors = caught.value.errors
    assert [error.record for error in errors] == ["line 3", "line 6"]
    assert [error.field for error in errors] == ["timezone", "instrument_token"]


def test_valid_json_lines_file(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [record(), "", record(reference="bread-43", currency=None)],
    )
    looked_up: list[str] = []

    def default_currency_for(store_hash: str) -> str | None:
        looked_up.append(store_hash)
        return "CAD"

    specs = parse_subscription_file(path, default_currency_for)

    assert [spec.reference for spec in specs] == ["bread-42", "bread-43"]
    assert [spec.currency for spec in specs] == ["USD", "CAD"]
    assert looked_up == ["abc123xyz", "abc123xyz"]
    assert all(isinstance(spec, SubscriptionSpec) for spec in specs)


def test_file_errors_never_contain_token(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [
            record(instrument_token=TOKEN.upper()),
            record(reference="bread-43", instrument_token=OTHER_TOKEN + "ff"),
            record(reference="bread-44", customer_id=0),
        ],
    )

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    text = str(caught.value)
    assert len(caught.value.errors) == 3
    for token in (TOKEN, TOKEN.upper(), OTHER_TOKEN):
        assert token not in text


def test_duplicate_reference_in_store(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [
            record(reference="bread-42"),
            record(reference="bread-42", store="zzz999"),
            record(reference="bread-42", customer_id=43),
        ],
    )

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    [error] = caught.value.errors
    assert error.record == "line 3"
    assert error.field == "reference"
    assert "duplicate reference 'bread-42' for store 'abc123xyz'" in error.message
    assert "line 1 already uses it" in error.message


def test_duplicate_reference_with_other_errors(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [record(customer_id=0), record(cron="0 25 * * *")],
    )

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    labels_and_fields = [(error.record, error.field) for error in caught.value.errors]
    assert labels_and_fields == [
        ("line 1", "customer_id"),
        ("line 2", "cron"),
        ("line 2", "reference"),
    ]


def test_default_currency_lookup_error(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [record(currency=None), record(store="zzz999", reference="bread-43")],
    )

    def default_currency_for(store_hash: str) -> str | None:
        if store_hash == "zzz999":
            raise InvalidInput("store zzz999", "store", "store 'zzz999' is not known")
        return "USD"

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, default_currency_for)

    [error] = caught.value.errors
    assert error.record == "line 2"
    assert error.field == "store"
    assert error.message == "store 'zzz999' is not known"


def test_malformed_json_line(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [
            record(),
            '{"store": "abc123xyz", "customer_id": 43,',
            record(reference="bread-43", cron="x"),
        ],
    )

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    malformed, bad_cron = caught.value.errors
    assert malformed.record == "line 2"
    assert malformed.field == "json"
    assert "invalid JSON at column" in malformed.message
    assert bad_cron.record == "line 3"
    assert bad_cron.field == "cron"


def test_pretty_printed_object_hint(tmp_path: Path) -> None:
    path = tmp_path / "subscription.json"
    path.write_text(json.dumps(record(), indent=2), encoding="utf-8")

    with pytest.raises(InvalidInputFile) as caught:
        read_records(path)

    assert caught.value.errors[0].record == "line 1"
    assert "put records that span several lines into a JSON array" in (
        caught.value.errors[0].message
    )


def test_malformed_json_array(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.json"
    path.write_text('[\n  {"store": "abc123xyz"},\n  {"store" "zzz999"}\n]\n')

    with pytest.raises(InvalidInput) as caught:
        parse_subscription_file(path, no_default)

    assert caught.value.record == str(path)
    assert caught.value.field == "json"
    assert "invalid JSON at line 3, column 12" in caught.value.message


def test_duplicate_json_key(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [record(), '{"store": "abc123xyz", "customer_id": 42, "customer_id": 43}'],
    )

    with pytest.raises(InvalidInputFile) as caught:
        read_records(path)

    [error] = caught.value.errors
    assert error.record == "line 2"
    assert "duplicate key 'customer_id'" in error.message


@pytest.mark.parametrize(
    "content", ["", "\n\n  \n", "\ufeff"], ids=["empty", "blank-lines", "bom-only"]
)
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "subscriptions.jsonl"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(InvalidInput) as caught:
        read_records(path)

    assert caught.value.record == str(path)
    assert "the file is empty" in caught.value.message


def test_empty_json_array(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.json"
    path.write_text("[]", encoding="utf-8")

    with pytest.raises(InvalidInput) as caught:
        parse_subscription_file(path, no_default)

    assert "contains no records" in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"

    with pytest.raises(InvalidInput) as caught:
        read_records(path)

    assert caught.value.record == str(path)
    assert "cannot read the file" in caught.value.message


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.jsonl"
    path.write_bytes(b'{"store": "caf\xe9"}\n')

    with pytest.raises(InvalidInput) as caught:
        read_records(path)

    assert "not UTF-8" in caught.value.message


def test_read_records_keeps_money_exact(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.json"
    path.write_text('\ufeff[{"price": 10.10}, {"price": 3}]', encoding="utf-8")

    records = read_records(path)

    assert records == [
        ("record 1", {"price": Decimal("10.10")}),
        ("record 2", {"price": 3}),
    ]
    assert isinstance(records[0][1]["price"], Decimal)  # type: ignore[index]


def test_read_records_array_of_non_objects(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.json"
    path.write_text(json.dumps([record(), 7]), encoding="utf-8")
    records = read_records(path)

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    assert [label for label, _ in records] == ["record 1", "record 2"]
    [error] = caught.value.errors
    assert error.record == "record 2"
    assert error.message == "must be a JSON object, not a number"


def test_file_lists_every_field_error(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "subscriptions.jsonl",
        [{"store": "abc123xyz", "customr_id": 42, "cron": "0 9 1 * *"}],
    )

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    fields = [error.field for error in caught.value.errors]
    assert fields == [
        "customr_id",
        "customer_id",
        "timezone",
        "currency",
        "order_template",
    ]
    assert "did you mean 'customer_id'?" in caught.value.errors[0].message
    assert {error.record for error in caught.value.errors} == {"line 1"}


Writer = Callable[[Path, list[dict[str, Any]]], Path]


def write_array(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    return write_json_lines(path, list(records))


@pytest.mark.parametrize(
    ("write", "bad_label"),
    [(write_array, "record 3"), (write_lines, "line 3")],
    ids=["json-array", "json-lines"],
)
def test_one_bad_record_blocks_file(
    write: Writer, bad_label: str, tmp_path: Path
) -> None:
    records = [
        record(reference="bread-1"),
        record(reference="bread-2"),
        record(reference="bread-3", order_template={**template(), "customer_id": 9}),
        record(reference="bread-4"),
    ]
    path = write(tmp_path / "subscriptions", records)

    with pytest.raises(InvalidInputFile) as caught:
        parse_subscription_file(path, no_default)

    [error] = caught.value.errors
    assert error.record == bad_label
    assert error.field == "order_template.customer_id"
    assert f"{bad_label}: order_template.customer_id:" in str(caught.value)
