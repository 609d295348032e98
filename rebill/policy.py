"""What each payment outcome means and what rebill does next.

RULES is the one table that maps every signal a charge can end with (a
BigCommerce error code, an HTTP status without a known code, a timeout, a
connection failure, a 201 response) to an outcome class and an action. The error
code decides first and the HTTP status second, except that any 401 from the
payments host is a rejected PAT, whatever code comes with it.

Policy holds the schedules and caps that the actions follow. Every field has a
default (DEFAULT_POLICY) that a store overrides through Store.retry_policy;
`parse_overrides` validates those overrides and names the field that is wrong.
The decisions themselves are in rebill.decisions.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from models import EndOfDunning, OutcomeClass
from rebill.errors import (
    BigCommerceError,
    InvalidInput,
    OutcomeUnknown,
    RateLimited,
    RequestNotSent,
)


class Action(enum.StrEnum):
    """The next step after an outcome."""

    MARK_PAID = "mark the cycle paid"
    RECONCILE = "read the order and its transactions on the reconcile schedule"
    RETRY = "retry on the transient schedule; not a dunning attempt"
    DUNNING = "retry on the soft-decline schedule at the store's billing hour"
    NEXT_INSTRUMENT = "try the customer's next stored instrument, else wait for one"
    CHECK_ORDER = "read the order: paid means paid, else rebuild it once, then review"
    PAUSE_STORE = "pause the store's billing and probe it on the probe schedule"
    REVIEW = "wait for an operator"


@dataclass(frozen=True)
class Rule:
    outcome: OutcomeClass
    action: Action
    meaning: str


PAID = OutcomeClass.PAID
PENDING = OutcomeClass.PENDING
UNKNOWN = OutcomeClass.UNKNOWN
TRANSIENT = OutcomeClass.TRANSIENT
SOFT = OutcomeClass.SOFT_DECLINE
HARD = OutcomeClass.HARD_DECLINE
ORDER = OutcomeClass.ORDER_PROBLEM
MERCHANT = OutcomeClass.MERCHANT_CONFIG
OUR_DATA = OutcomeClass.OUR_DATA

# Signals other than an error code.
SUCCESS = "201 success"
PENDING_RESPONSE = "201 pending"
PAT_REJECTED = "HTTP 401 from the payments host"
API_UNAUTHORIZED = "HTTP 401 from the store API"
FORBIDDEN = "HTTP 403"
NOT_FOUND = "HTTP 404"
CONFLICT = "HTTP 409"
UNPROCESSABLE = "HTTP 422"
OTHER_CLIENT_ERROR = "other HTTP 4xx"
TOO_MANY_REQUESTS = "HTTP 429"
PAYMENTS_SERVER_ERROR = "HTTP 5xx from the payments host"
API_SERVER_ERROR = "HTTP 5xx from the store API"
TIMEOUT_AFTER_PAYMENT = "timeout or reset after the payment was sent"
TIMEOUT_BEFORE_PAYMENT = "timeout or reset of a store API request"
CONNECTION_FAILED = "connection failed, nothing sent"

RULES: dict[int | str, Rule] = {
    SUCCESS: Rule(PAID, Action.MARK_PAID, "payment taken"),
    PENDING_RESPONSE: Rule(PENDING, Action.RECONCILE, "payment not settled yet"),
    10000: Rule(UNKNOWN, Action.RECONCILE, "gateway trouble; a charge may exist"),
    10001: Rule(OUR_DATA, Action.REVIEW, "request data missing or invalid"),
    30000: Rule(MERCHANT, Action.PAUSE_STORE, "no payment gateway configured"),
    30001: Rule(MERCHANT, Action.PAUSE_STORE, "gateway rejects the configuration"),
    30002: Rule(MERCHANT, Action.PAUSE_STORE, "stored instruments not enabled"),
    30003: Rule(ORDER, Action.CHECK_ORDER, "order not found"),
    30004: Rule(ORDER, Action.CHECK_ORDER, "order total differs from the PAT"),
    30050: Rule(OUR_DATA, Action.REVIEW, "instrument could not be saved"),
    30051: Rule(HARD, Action.NEXT_INSTRUMENT, "stored instrument not found"),
    30100: Rule(TRANSIENT, Action.RETRY, "PAT could not be created"),
    30101: Rule(ORDER, Action.CHECK_ORDER, "order not Incomplete; may be paid"),
    30102: Rule(HARD, Action.NEXT_INSTRUMENT, "card details not verified"),
    30103: Rule(HARD, Action.NEXT_INSTRUMENT, "card expired"),
    30104: Rule(SOFT, Action.DUNNING, "customer must contact the issuer"),
    30105: Rule(UNKNOWN, Action.RECONCILE, "duplicate: never charged again"),
    30106: Rule(SOFT, Action.DUNNING, "insufficient funds"),
    30107: Rule(HARD, Action.NEXT_INSTRUMENT, "PayPal authorization revoked"),
    PAT_REJECTED: Rule(TRANSIENT, Action.RETRY, "PAT rejected; twice pauses"),
    API_UNAUTHORIZED: Rule(MERCHANT, Action.PAUSE_STORE, "store API token invalid"),
    FORBIDDEN: Rule(MERCHANT, Action.PAUSE_STORE, "store API token lacks a scope"),
    NOT_FOUND: Rule(ORDER, Action.CHECK_ORDER, "order or resource not found"),
    CONFLICT: Rule(ORDER, Action.CHECK_ORDER, "order in the wrong state"),
    UNPROCESSABLE: Rule(OUR_DATA, Action.REVIEW, "request rejected as invalid"),
    OTHER_CLIENT_ERROR: Rule(OUR_DATA, Action.REVIEW, "request rejected"),
    TOO_MANY_REQUESTS: Rule(TRANSIENT, Action.RETRY, "rate limited; nothing done"),
    PAYMENTS_SERVER_ERROR: Rule(UNKNOWN, Action.RECONCILE, "a charge may exist"),
    API_SERVER_ERROR: Rule(TRANSIENT, Action.RETRY, "no money moves here"),
    TIMEOUT_AFTER_PAYMENT: Rule(UNKNOWN, Action.RECONCILE, "a charge may exist"),
    TIMEOUT_BEFORE_PAYMENT: Rule(TRANSIENT, Action.RETRY, "no money moves here"),
    CONNECTION_FAILED: Rule(TRANSIENT, Action.RETRY, "request never left"),
}


def signal_of(error: BigCommerceError, *, payment_sent: bool) -> int | str:
    """Return the RULES key for a failed call.

    `payment_sent` is True when the failed call was POST /payments or came
    after it. A failure before that point cannot have moved money.
    """
    if isinstance(error, RequestNotSent):
        return CONNECTION_FAILED
    if isinstance(error, RateLimited):
        return TOO_MANY_REQUESTS
    if isinstance(error, OutcomeUnknown) and error.http_status is None:
        return TIMEOUT_AFTER_PAYMENT if payment_sent else TIMEOUT_BEFORE_PAYMENT
    status = error.http_status or 0
    if status == 401 and payment_sent:
        return PAT_REJECTED
    if error.code is not None and error.code in RULES:
        return error.code
    return _status_signal(status, payment_sent=payment_sent)


def _status_signal(status: int, *, payment_sent: bool) -> str:
    if status >= 500 or status == 0:
        return PAYMENTS_SERVER_ERROR if payment_sent else API_SERVER_ERROR
    by_status = {
        401: API_UNAUTHORIZED,
        403: FORBIDDEN,
        404: NOT_FOUND,
        409: CONFLICT,
        422: UNPROCESSABLE,
        429: TOO_MANY_REQUESTS,
    }
    return by_status.get(status, OTHER_CLIENT_ERROR)


def rule_for(signal: int | str, *, payment_sent: bool) -> Rule:
    """Return the rule of a signal.

    An UNKNOWN rule raised before any payment was sent (10000 or 30105 from a
    store API call) becomes a transient retry: that request moved no money.
    """
    rule = RULES[signal]
    if rule.outcome is UNKNOWN and not payment_sent:
        return Rule(TRANSIENT, Action.RETRY, f"{rule.meaning} (before the payment)")
    return rule


def classify_error(error: BigCommerceError, *, payment_sent: bool) -> OutcomeClass:
    """Return the outcome class of a failed call."""
    signal = signal_of(error, payment_sent=payment_sent)
    return rule_for(signal, payment_sent=payment_sent).outcome


@dataclass(frozen=True)
class Policy:
    """Schedules and caps of one store.

    A *_delays field lists waits measured from the failure before each retry.
    A *_schedule field lists offsets from the start of a wait (the first
    decline, or the moment an outcome became unknown or pending).
    """

    transient_delays: tuple[timedelta, ...]
    soft_decline_schedule: tuple[timedelta, ...]
    contact_issuer_retries: int
    unknown_schedule: tuple[timedelta, ...]
    pending_schedule: tuple[timedelta, ...]
    probe_delays: tuple[timedelta, ...]
    max_declines: int
    max_attempts: int
    max_days: int
    max_order_rebuilds: int
    end_of_dunning: EndOfDunning


def _minutes(*values: int) -> tuple[timedelta, ...]:
    return tuple(timedelta(minutes=value) for value in values)


def _days(*values: int) -> tuple[timedelta, ...]:
    return tuple(timedelta(days=value) for value in values)


DEFAULT_POLICY = Policy(
    transient_delays=_minutes(5, 10, 20, 40, 80, 160, 320, 640),
    soft_decline_schedule=_days(1, 3, 7, 14),
    contact_issuer_retries=3,
    unknown_schedule=_minutes(5, 60) + _days(1, 2, 3, 4, 5, 6, 7),
    pending_schedule=_minutes(60) + _days(1, 2, 3, 4, 5, 6),
    probe_delays=_minutes(15, 60, 240, 720),
    max_declines=5,
    max_attempts=10,
    max_days=30,
    max_order_rebuilds=1,
    end_of_dunning=EndOfDunning.PAUSE,
)

# Allowed range of each integer field, inclusive.
INTEGER_RANGES = {
    "contact_issuer_retries": (0, 20),
    "max_declines": (1, 50),
    "max_attempts": (1, 100),
    "max_days": (1, 365),
    "max_order_rebuilds": (0, 5),
}
DURATION_LIST_FIELDS = (
    "transient_delays",
    "soft_decline_schedule",
    "unknown_schedule",
    "pending_schedule",
    "probe_delays",
)
MAX_LIST_LENGTH = 50
POLICY_FIELDS = tuple(item.name for item in fields(Policy))

DURATION_PATTERN = re.compile(r"^(\d{1,6})([smhd])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """Parse "90s", "5m", "1h" or "14d"; raise ValueError otherwise."""
    match = DURATION_PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; use a number and s, m, h or d")
    amount, unit = match.groups()
    return timedelta(**{DURATION_UNITS[unit]: int(amount)})


def format_duration(value: timedelta) -> str:
    """Format a duration in the largest unit that divides it: 86400 s is "1d"."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def policy_for(overrides: Mapping[str, Any] | None) -> Policy:
    """Return DEFAULT_POLICY with a store's stored overrides applied.

    Stored overrides were validated when they were set; an invalid one raises
    InvalidInput all the same, so a hand-edited row cannot slip through.
    """
    if not overrides:
        return DEFAULT_POLICY
    return replace(DEFAULT_POLICY, **_parse_values(overrides, "retry policy"))


def parse_overrides(raw: object, *, record: str) -> dict[str, Any]:
    """Validate policy overrides and return them in their stored JSON form.

    Raises InvalidInput naming the field, e.g. "soft_decline_schedule[2]".
    """
    if not isinstance(raw, Mapping):
        raise InvalidInput(record, "retry_policy", "must be a JSON object")
    values = _parse_values(raw, record)
    return policy_json(values)


def policy_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Return policy values as JSON: durations as strings like "5m"."""
    result: dict[str, Any] = {}
    for name, value in values.items():
        if name in DURATION_LIST_FIELDS:
            result[name] = [format_duration(item) for item in value]
        elif isinstance(value, enum.Enum):
            result[name] = value.value
        else:
            result[name] = value
    return result


def describe_policy(policy: Policy) -> dict[str, Any]:
    """Return every field of a policy as JSON, for showing it."""
    return policy_json({name: getattr(policy, name) for name in POLICY_FIELDS})


def _parse_values(raw: Mapping[str, Any], record: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in POLICY_FIELDS:
            raise InvalidInput(
                record,
                str(name),
                f"unknown policy setting; use one of {', '.join(POLICY_FIELDS)}",
            )
        values[name] = _parse_field(name, value, record)
    return values


def _parse_field(name: str, value: Any, record: str) -> Any:
    if name in DURATION_LIST_FIELDS:
        return _parse_durations(name, value, record)
    if name == "end_of_dunning":
        allowed = [item.value for item in EndOfDunning]
        if value not in allowed:
            raise InvalidInput(
                record, name, f"{value!r} is invalid; use {', '.join(allowed)}"
            )
        return EndOfDunning(value)
    low, high = INTEGER_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(record, name, f"{value!r} is not an integer")
    if not low <= value <= high:
        raise InvalidInput(
            record, name, f"{value} is out of range; use {low} to {high}"
        )
    return value


def _parse_durations(name: str, value: Any, record: str) -> tuple[timedelta, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput(
            record, name, "must be a non-empty list of durations such as 1d,3d,7d"
        )
    if len(value) > MAX_LIST_LENGTH:
        raise InvalidInput(
            record, name, f"has {len(value)} entries; use at most {MAX_LIST_LENGTH}"
        )
    durations: list[timedelta] = []
    for index, item in enumerate(value):
        try:
            duration = parse_duration(str(item))
        except ValueError as error:
            raise InvalidInput(record, f"{name}[{index}]", str(error)) from None
        if duration <= timedelta(0):
            raise InvalidInput(record, f"{name}[{index}]", "must be longer than 0")
        if name.endswith("_schedule") and durations and duration <= durations[-1]:
            raise InvalidInput(
                record,
                f"{name}[{index}]",
                f"{item} is not after {format_duration(durations[-1])}; offsets "
                "of a schedule must increase",
            )
        durations.append(duration)
    return tuple(durations)
