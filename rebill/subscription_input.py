"""Merchant input for subscriptions: one record, or a file of records.

A record is a JSON object such as

    {"store": "abc123xyz", "customer_id": 42, "cron": "0 9 1 * *",
     "timezone": "America/New_York", "currency": "USD",
     "order_template": {...}, "reference": "plan-gold-42"}

parse_subscription checks one record and stops at its first invalid field.
parse_subscription_file checks every field of every record of a file and
raises one InvalidInputFile listing all problems, so a merchant can fix the
whole file in one pass.
"""

from __future__ import annotations

import functools
import json
import os
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, TypeVar

from croniter import croniter

from models import MAX_INTEGER
from rebill.errors import InvalidInput, InvalidInputFile
from rebill.money import currency_exponent
from rebill.order_template import OrderTemplate, parse_order_template
from rebill.validation import (
    json_type_name,
    reject_unknown_keys,
    require_object,
    require_positive_int,
    require_string,
)

T = TypeVar("T")

EndOfDunningAction = Literal["pause", "skip", "cancel"]
END_OF_DUNNING_ACTIONS: tuple[EndOfDunningAction, ...] = ("pause", "skip", "cancel")

RECORD_FIELDS = frozenset(
    {
        "store",
        "customer_id",
        "cron",
        "timezone",
        "currency",
        "order_template",
        "reference",
        "payment_method_id",
        "instrument_token",
        "end_of_dunning_action",
        "first_billing_at",
    }
)

CRON_EXAMPLE = "'0 9 1 * *' (09:00 on the 1st of every month)"
# The five standard cron fields, each with the values croniter accepts in it.
CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31 or L (the last day)"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 or SUN-SAT (0 and 7 are Sunday)"),
)
TIMEZONE_EXAMPLE = "'America/New_York'"
DATETIME_EXAMPLE = "'2025-07-01T09:00:00-04:00'"

# Maximum lengths, in characters, of the database columns for these fields.
MAX_REFERENCE_LENGTH = 200  # subscriptions.reference
MAX_PAYMENT_METHOD_ID_LENGTH = 100  # subscriptions.payment_method_id
MAX_CRON_LENGTH = 100  # subscriptions.cron
MAX_STORE_HASH_LENGTH = 64  # stores.store_hash

# The store hash goes into API URL paths, so only letters and digits are accepted.
_STORE_HASH = re.compile(r"[A-Za-z0-9]+")
_INSTRUMENT_TOKEN = re.compile(r"[0-9a-f]{64}")
_NO_WHITESPACE = re.compile(r"\S+")


@dataclass(frozen=True)
class SubscriptionSpec:
    """A validated subscription as a merchant described it.

    `reference` is the merchant's own id for the subscription, unique per store.
    `instrument_token` is the preferred stored instrument and is left out of
    repr() so that logging a spec never reveals it.
    """

    store_hash: str
    customer_id: int
    cron: str
    timezone: str
    currency: str
    order_template: OrderTemplate
    reference: str | None = None
    payment_method_id: str | None = None
    instrument_token: str | None = field(default=None, repr=False)
    end_of_dunning_action: EndOfDunningAction | None = None
    first_billing_at: datetime | None = None


def parse_subscription(
    record: object, *, label: str, default_currency: str | None
) -> SubscriptionSpec:
    """Validate one subscription record and return it as a SubscriptionSpec.

    `record` is typed `object` because it usually comes from read_records, and
    anything other than a JSON object is reported as invalid. A key whose value
    is None counts as absent, so a CLI can pass unset options as None.
    `label` names the record in errors ("line 3", "command line"). The record's
    currency falls back to `default_currency`, normally the store's. Raises
    InvalidInput for the first invalid field.
    """
    spec, errors = _parse_record(record, label=label, default_currency=default_currency)
    if errors:
        raise errors[0]
    assert spec is not None, "a record without errors always yields a spec"
    return spec


def parse_subscription_or_errors(
    record: object, *, label: str, default_currency: str | None
) -> tuple[SubscriptionSpec | None, list[InvalidInput]]:
    """Validate every field of one record and return the spec or all its errors.

    Behaves like parse_subscription but does not stop at the first invalid
    field, so an API can name each bad field in one response.
    """
    return _parse_record(record, label=label, default_currency=default_currency)


def _parse_record(
    raw: object, *, label: str, default_currency: str | None
) -> tuple[SubscriptionSpec | None, list[InvalidInput]]:
    """Check every field of a record and return the spec or all the errors."""
    try:
        record = require_object(raw, record=label, field="record")
    except InvalidInput as error:
        return None, [error]

    parser = _FieldParser(record, label)
    try:
        reject_unknown_keys(record, RECORD_FIELDS, record=label, path="")
    except InvalidInput as error:
        parser.errors.append(error)
    store_hash = parser.parse("store", parse_store_hash, required=True)
    customer_id = parser.parse("customer_id", _parse_customer_id, required=True)
    cron = parser.parse("cron", parse_cron, required=True)
    timezone = parser.parse("timezone", parse_timezone, required=True)
    currency = _parse_currency(parser, default_currency)
    order_template = None
    if currency is not None:
        order_template = parser.parse(
            "order_template",
            functools.partial(_parse_template, currency=currency),
            required=True,
        )
    elif record.get("order_template") is None:
        # Prices cannot be checked without a currency, but absence can.
        parser.errors.append(InvalidInput(label, "order_template", "missing"))
    reference = parser.parse("reference", _parse_reference)
    payment_method_id = parser.parse("payment_method_id", _parse_payment_method_id)
    instrument_token = parser.parse("instrument_token", _parse_instrument_token)
    action = parser.parse("end_of_dunning_action", _parse_end_of_dunning_action)
    first_billing_at = parser.parse("first_billing_at", parse_aware_datetime)

    if parser.errors:
        return None, parser.errors
    assert store_hash is not None and customer_id is not None
    assert cron is not None and timezone is not None
    assert currency is not None and order_template is not None
    spec = SubscriptionSpec(
        store_hash=store_hash,
        customer_id=customer_id,
        cron=cron,
        timezone=timezone,
        currency=currency,
        order_template=order_template,
        reference=reference,
        payment_method_id=payment_method_id,
        instrument_token=instrument_token,
        end_of_dunning_action=action,
        first_billing_at=first_billing_at,
    )
    return spec, []


class _FieldParser:
    """Per-field parsers of one record, with the errors they raised."""

    def __init__(self, record: Mapping[str, object], label: str) -> None:
        self.record = record
        self.label = label
        self.errors: list[InvalidInput] = []

    def parse(
        self,
        name: str,
        parse_value: Callable[..., T],
        *,
        required: bool = False,
    ) -> T | None:
        """Return the parsed field, or None when it is absent or invalid.

        An absent or null required field is recorded as missing. Any other
        problem is the InvalidInput that `parse_value` raised.
        """
        value = self.record.get(name)
        if value is None:
            if required:
                self.errors.append(InvalidInput(self.label, name, "missing"))
            return None
        try:
            return parse_value(value, record=self.label, field=name)
        except InvalidInput as error:
            self.errors.append(error)
            return None


def _parse_currency(parser: _FieldParser, default_currency: str | None) -> str | None:
    """Return the record's currency, else the default, else record an error."""
    if parser.record.get("currency") is not None:
        return parser.parse("currency", _parse_currency_code)
    if default_currency is None:
        parser.errors.append(
            InvalidInput(
                parser.label,
                "currency",
                "missing: the store has no default currency, so give one such as 'USD'",
            )
        )
        return None
    try:
        return _parse_currency_code(
            default_currency, record=parser.label, field="currency"
        )
    except InvalidInput as error:
        parser.errors.append(
            InvalidInput(
                parser.label,
                "currency",
                f"missing, and the store's default currency is invalid "
                f"({error.message}): give a currency in the record",
            )
        )
        return None


def _parse_currency_code(value: object, *, record: str, field: str) -> str:
    code = require_string(value, record=record, field=field)
    currency_exponent(code, record=record, field=field)
    return code


def _parse_template(
    value: object, *, record: str, field: str, currency: str
) -> OrderTemplate:
    return parse_order_template(value, currency, record=record)


def parse_store_hash(value: object, *, record: str, field: str) -> str:
    """Return a store hash of letters and digits that fits the stores column."""
    store_hash = require_string(
        value, record=record, field=field, max_length=MAX_STORE_HASH_LENGTH
    )
    if not _STORE_HASH.fullmatch(store_hash):
        raise InvalidInput(
            record,
            field,
            f"invalid store hash {store_hash!r}: expected letters and digits only, "
            "such as 'abc123xyz'",
        )
    return store_hash


def _parse_customer_id(value: object, *, record: str, field: str) -> int:
    if value == 0 and not isinstance(value, bool):
        raise InvalidInput(
            record,
            field,
            "0 is a guest, and guests have no stored payment instruments to "
            "charge: give the id of a registered customer",
        )
    return require_positive_int(value, record=record, field=field, maximum=MAX_INTEGER)


def parse_cron(value: object, *, record: str, field: str) -> str:
    """Return a valid five-field cron expression or @-macro such as "@monthly".

    The message of the InvalidInput names the cron field that croniter
    rejects, when a single field is to blame, and gives a valid example.
    """
    expression = require_string(
        value, record=record, field=field, max_length=MAX_CRON_LENGTH
    ).strip()
    if expression.startswith("@"):
        if not croniter.is_valid(expression):
            raise InvalidInput(
                record,
                field,
                f"invalid cron expression {expression!r}: use @hourly, @daily, "
                f"@weekly, @monthly or @yearly, or five fields such as "
                f"{CRON_EXAMPLE}",
            )
        return expression

    parts = expression.split()
    if len(parts) != len(CRON_FIELDS):
        raise InvalidInput(
            record,
            field,
            f"invalid cron expression {expression!r}: it has {len(parts)} fields "
            "but needs 5 (minute, hour, day of month, month, day of week), such "
            f"as {CRON_EXAMPLE}",
        )
    if not croniter.is_valid(expression):
        raise InvalidInput(
            record,
            field,
            f"invalid cron expression {expression!r}: {_explain_cron(parts)}. "
            f"A valid example is {CRON_EXAMPLE}",
        )
    return expression


def _explain_cron(parts: list[str]) -> str:
    """Name the first field that croniter rejects on its own, with its range."""
    for index, (name, allowed) in enumerate(CRON_FIELDS):
        probe = ["*"] * len(CRON_FIELDS)
        probe[index] = parts[index]
        if not croniter.is_valid(" ".join(probe)):
            return f"{name} {parts[index]!r} is invalid: {name} must be {allowed}"
    return "croniter rejects the combination of its fields"


def parse_timezone(value: object, *, record: str, field: str) -> str:
    """Return an IANA time zone name that zoneinfo can load, such as "Europe/Paris"."""
    name = require_string(value, record=record, field=field)
    if name in _iana_timezones():
        return name
    close = [zone for zone in _iana_timezones() if zone.lower() == name.lower()]
    if close:
        hint = f"did you mean {close[0]!r}?"
    else:
        hint = f"use an IANA time zone name such as {TIMEZONE_EXAMPLE}"
    raise InvalidInput(record, field, f"unknown time zone {name!r}: {hint}")


@functools.cache
def _iana_timezones() -> frozenset[str]:
    # "localtime" is this machine's zone and "Factory" means "unknown", so
    # neither is a real place to bill in.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def _parse_reference(value: object, *, record: str, field: str) -> str:
    reference = require_string(
        value, record=record, field=field, max_length=MAX_REFERENCE_LENGTH
    )
    if reference != reference.strip():
        raise InvalidInput(
            record,
            field,
            f"reference {reference!r} starts or ends with whitespace: remove it",
        )
    return reference


def _parse_payment_method_id(value: object, *, record: str, field: str) -> str:
    method_id = require_string(
        value, record=record, field=field, max_length=MAX_PAYMENT_METHOD_ID_LENGTH
    )
    if not _NO_WHITESPACE.fullmatch(method_id):
        raise InvalidInput(
            record,
            field,
            f"invalid payment method id {method_id!r}: it must not contain "
            "whitespace, as in 'stripe.card'",
        )
    return method_id


def _parse_instrument_token(value: object, *, record: str, field: str) -> str:
    """Check a stored-instrument token without ever putting it into a message."""
    if not isinstance(value, str):
        raise InvalidInput(
            record, field, f"must be a string, not {json_type_name(value)}"
        )
    rule = "a stored instrument token is 64 lowercase hexadecimal characters"
    if len(value) != 64:
        raise InvalidInput(
            record, field, f"invalid token of {len(value)} characters: {rule}"
        )
    if not _INSTRUMENT_TOKEN.fullmatch(value):
        raise InvalidInput(
            record,
            field,
            f"invalid token: it contains characters other than 0-9 and a-f, but {rule}",
        )
    return value


def _parse_end_of_dunning_action(
    value: object, *, record: str, field: str
) -> EndOfDunningAction:
    for action in END_OF_DUNNING_ACTIONS:
        if value == action:
            return action
    described = repr(value) if isinstance(value, str) else json_type_name(value)
    raise InvalidInput(
        record,
        field,
        f"invalid action {described}: use one of " + ", ".join(END_OF_DUNNING_ACTIONS),
    )


def parse_aware_datetime(value: object, *, record: str, field: str) -> datetime:
    """Parse an ISO 8601 date-time with a UTC offset and return it in UTC."""
    text = require_string(value, record=record, field=field)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            record,
            field,
            f"invalid date-time {text!r}: use ISO 8601 with a UTC offset, such as "
            f"{DATETIME_EXAMPLE}",
        ) from None
    if moment.utcoffset() is None:
        raise InvalidInput(
            record,
            field,
            f"date-time {text!r} has no UTC offset, so its instant is ambiguous: "
            f"add one, such as {DATETIME_EXAMPLE} or a trailing Z for UTC",
        )
    return moment.astimezone(UTC)


def read_records(path: str | os.PathLike[str]) -> list[tuple[str, object]]:
    """Read the records of a JSON-array or JSON-lines file, each with its label.

    A file whose first non-blank character is "[" is one JSON array, and its
    items are labelled "record 1", "record 2" and so on. Any other file contains
    one JSON value per line, labelled "line N", and blank lines are skipped.
    JSON numbers with a fraction are read as Decimal, never as float.

    Raises InvalidInput when the file cannot be read, is empty or is not valid
    JSON, and InvalidInputFile listing every line that is not valid JSON.
    """
    entries = _read_entries(path)
    errors = [value for _, value in entries if isinstance(value, InvalidInput)]
    if errors:
        raise InvalidInputFile(str(path), errors)
    return entries


def parse_subscription_file(
    path: str | os.PathLike[str],
    default_currency_for: Callable[[str], str | None],
) -> list[SubscriptionSpec]:
    """Read and validate every subscription in a file.

    `default_currency_for(store_hash)` returns the store's default currency,
    used by records without a currency. It may raise InvalidInput, for example
    for an unknown store, and that error is reported against the record.
    Raises InvalidInputFile listing the errors of all records, including two
    records with the same (store, reference), and InvalidInput when the file
    itself cannot be read or contains no records.
    """
    specs: list[SubscriptionSpec] = []
    errors: list[InvalidInput] = []
    first_use: dict[tuple[str, str], str] = {}
    for label, value in _read_entries(path):
        if isinstance(value, InvalidInput):
            errors.append(value)
            continue
        spec, record_errors = _parse_file_record(value, label, default_currency_for)
        errors.extend(record_errors)
        duplicate = _check_unique_reference(value, label, first_use)
        if duplicate is not None:
            errors.append(duplicate)
        if spec is not None:
            specs.append(spec)

    if errors:
        raise InvalidInputFile(str(path), errors)
    return specs


def _parse_file_record(
    raw: object, label: str, default_currency_for: Callable[[str], str | None]
) -> tuple[SubscriptionSpec | None, list[InvalidInput]]:
    default_currency = None
    store = raw.get("store") if isinstance(raw, Mapping) else None
    if isinstance(store, str) and _STORE_HASH.fullmatch(store):
        try:
            default_currency = default_currency_for(store)
        except InvalidInput as error:
            return None, [InvalidInput(label, "store", error.message)]
    return _parse_record(raw, label=label, default_currency=default_currency)


def _check_unique_reference(
    raw: object, label: str, first_use: dict[tuple[str, str], str]
) -> InvalidInput | None:
    """Return an error when an earlier record has the same store and reference.

    Works on the raw values, so a duplicate shows up in the same pass even when
    either record has other errors.
    """
    if not isinstance(raw, Mapping):
        return None
    store, reference = raw.get("store"), raw.get("reference")
    if not isinstance(store, str) or not isinstance(reference, str):
        return None
    key = (store, reference)
    if key not in first_use:
        first_use[key] = label
        return None
    return InvalidInput(
        label,
        "reference",
        f"duplicate reference {reference!r} for store {store!r}: "
        f"{first_use[key]} already uses it, and a reference must be unique "
        "within a store",
    )


def _read_entries(path: str | os.PathLike[str]) -> list[tuple[str, object]]:
    """Return (label, value) pairs, where a line that is not JSON has an InvalidInput.

    Raises InvalidInput when the file cannot be read, is empty or is not one
    valid JSON array.
    """
    text = _read_text(path)
    if not text.strip():
        raise InvalidInput(
            str(path),
            "file",
            "the file is empty: expected a JSON array of subscription objects, "
            "or one JSON object per line",
        )
    if text.lstrip().startswith("["):
        entries = _read_json_array(text, str(path))
    else:
        entries = _read_json_lines(text)
    if not entries:
        raise InvalidInput(str(path), "file", "the file contains no records")
    return entries


def _read_text(path: str | os.PathLike[str]) -> str:
    # utf-8-sig drops the byte order mark that some spreadsheet exports add.
    try:
        with open(path, encoding="utf-8-sig") as file:
            return file.read()
    except OSError as error:
        raise InvalidInput(
            str(path), "file", f"cannot read the file: {error.strerror}"
        ) from error
    except UnicodeDecodeError as error:
        raise InvalidInput(
            str(path),
            "file",
            f"the file is not UTF-8 text: invalid byte at offset {error.start}",
        ) from error


def _read_json_array(text: str, path: str) -> list[tuple[str, object]]:
    try:
        items = _loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            path,
            "json",
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}",
        ) from None
    except _DuplicateKey as error:
        raise InvalidInput(path, "json", str(error)) from None
    if not isinstance(items, list):
        raise InvalidInput(path, "json", "expected one JSON array of records")
    return [(f"record {number}", item) for number, item in enumerate(items, 1)]


def _read_json_lines(text: str) -> list[tuple[str, object]]:
    entries: list[tuple[str, object]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label = f"line {number}"
        try:
            entries.append((label, _loads(line)))
        except json.JSONDecodeError as error:
            message = (
                f"invalid JSON at column {error.colno}: {error.msg}. Each line must "
                "contain one whole JSON object; put records that span several "
                "lines into a JSON array instead"
            )
            entries.append((label, InvalidInput(label, "json", message)))
        except _DuplicateKey as error:
            entries.append((label, InvalidInput(label, "json", str(error))))
    return entries


class _DuplicateKey(ValueError):
    """A JSON object contains the same key twice."""


def _loads(text: str) -> object:
    return json.loads(text, parse_float=Decimal, object_pairs_hook=_unique_object)


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # json.loads keeps the last of two equal keys without a word. For a price or
    # a customer id that silently drops a value the merchant wrote.
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(
                f"duplicate key {key!r} in one JSON object: remove one of them"
            )
        result[key] = value
    return result
