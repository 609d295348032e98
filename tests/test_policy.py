"""The policy table, error classification and store policy overrides."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models import EndOfDunning, OutcomeClass
from rebill import policy
from rebill.errors import (
    ApiError,
    InvalidInput,
    OutcomeUnknown,
    RateLimited,
    RequestNotSent,
)
from rebill.policy import Action

DOCUMENTED_CODES = (
    10000,
    10001,
    30000,
    30001,
    30002,
    30003,
    30004,
    30050,
    30051,
    30100,
    30101,
    30102,
    30103,
    30104,
    30105,
    30106,
    30107,
)
CONTEXT = {"endpoint": "process payment", "store_hash": "abc123xyz", "order_id": 100}


def test_table_covers_every_documented_code() -> None:
    missing = [code for code in DOCUMENTED_CODES if code not in policy.RULES]
    assert missing == []


@pytest.mark.parametrize(
    "signal",
    [
        policy.SUCCESS,
        policy.PENDING_RESPONSE,
        policy.PAT_REJECTED,
        policy.API_UNAUTHORIZED,
        policy.FORBIDDEN,
        policy.NOT_FOUND,
        policy.CONFLICT,
        policy.UNPROCESSABLE,
        policy.TOO_MANY_REQUESTS,
        policy.PAYMENTS_SERVER_ERROR,
        policy.API_SERVER_ERROR,
        policy.TIMEOUT_AFTER_PAYMENT,
        policy.TIMEOUT_BEFORE_PAYMENT,
        policy.CONNECTION_FAILED,
    ],
)
def test_table_covers_signal(signal: str) -> None:
    rule = policy.RULES[signal]
    assert rule.meaning


@pytest.mark.parametrize(
    ("code", "outcome", "action"),
    [
        (10000, OutcomeClass.UNKNOWN, Action.RECONCILE),
        (10001, OutcomeClass.OUR_DATA, Action.REVIEW),
        (30000, OutcomeClass.MERCHANT_CONFIG, Action.PAUSE_STORE),
        (30001, OutcomeClass.MERCHANT_CONFIG, Action.PAUSE_STORE),
        (30002, OutcomeClass.MERCHANT_CONFIG, Action.PAUSE_STORE),
        (30003, OutcomeClass.ORDER_PROBLEM, Action.CHECK_ORDER),
        (30004, OutcomeClass.ORDER_PROBLEM, Action.CHECK_ORDER),
        (30050, OutcomeClass.OUR_DATA, Action.REVIEW),
        (30051, OutcomeClass.HARD_DECLINE, Action.NEXT_INSTRUMENT),
        (30100, OutcomeClass.TRANSIENT, Action.RETRY),
        (30101, OutcomeClass.ORDER_PROBLEM, Action.CHECK_ORDER),
        (30102, OutcomeClass.HARD_DECLINE, Action.NEXT_INSTRUMENT),
        (30103, OutcomeClass.HARD_DECLINE, Action.NEXT_INSTRUMENT),
        (30104, OutcomeClass.SOFT_DECLINE, Action.DUNNING),
        (30105, OutcomeClass.UNKNOWN, Action.RECONCILE),
        (30106, OutcomeClass.SOFT_DECLINE, Action.DUNNING),
        (30107, OutcomeClass.HARD_DECLINE, Action.NEXT_INSTRUMENT),
    ],
)
def test_code_after_payment(code: int, outcome: OutcomeClass, action: Action) -> None:
    error = ApiError("declined", http_status=422, code=code, **CONTEXT)
    signal = policy.signal_of(error, payment_sent=True)
    rule = policy.rule_for(signal, payment_sent=True)
    assert signal == code
    assert rule.outcome is outcome
    assert rule.action is action


def test_code_decides_before_status() -> None:
    error = ApiError("declined", http_status=502, code=30106, **CONTEXT)
    assert policy.classify_error(error, payment_sent=True) is OutcomeClass.SOFT_DECLINE


def test_unknown_code_before_payment_is_transient() -> None:
    error = ApiError("gateway", http_status=502, code=10000, **CONTEXT)
    assert policy.classify_error(error, payment_sent=False) is OutcomeClass.TRANSIENT


def test_payments_401_is_pat_rejection_whatever_code() -> None:
    error = ApiError("bad PAT", http_status=401, code=10001, **CONTEXT)
    assert policy.signal_of(error, payment_sent=True) == policy.PAT_REJECTED
    assert policy.classify_error(error, payment_sent=True) is OutcomeClass.TRANSIENT


@pytest.mark.parametrize(
    ("status", "payment_sent", "outcome"),
    [
        (401, False, OutcomeClass.MERCHANT_CONFIG),
        (403, False, OutcomeClass.MERCHANT_CONFIG),
        (403, True, OutcomeClass.MERCHANT_CONFIG),
        (404, False, OutcomeClass.ORDER_PROBLEM),
        (409, False, OutcomeClass.ORDER_PROBLEM),
        (422, True, OutcomeClass.OUR_DATA),
        (400, True, OutcomeClass.OUR_DATA),
        (500, True, OutcomeClass.UNKNOWN),
        (503, True, OutcomeClass.UNKNOWN),
        (500, False, OutcomeClass.TRANSIENT),
    ],
    ids=lambda value: str(value),
)
def test_status_without_code(
    status: int, payment_sent: bool, outcome: OutcomeClass
) -> None:
    error = ApiError("error", http_status=status, **CONTEXT)
    assert policy.classify_error(error, payment_sent=payment_sent) is outcome


def test_transport_errors() -> None:
    not_sent = RequestNotSent("refused", **CONTEXT)
    timed_out = OutcomeUnknown("read timeout", **CONTEXT)
    limited = RateLimited("429", retry_after=None, http_status=429, **CONTEXT)
    assert policy.classify_error(not_sent, payment_sent=True) is OutcomeClass.TRANSIENT
    assert policy.classify_error(timed_out, payment_sent=True) is OutcomeClass.UNKNOWN
    assert (
        policy.classify_error(timed_out, payment_sent=False) is OutcomeClass.TRANSIENT
    )
    assert policy.classify_error(limited, payment_sent=True) is OutcomeClass.TRANSIENT


def test_default_policy_matches_design() -> None:
    defaults = policy.DEFAULT_POLICY
    assert defaults.soft_decline_schedule == tuple(
        timedelta(days=day) for day in (1, 3, 7, 14)
    )
    assert len(defaults.transient_delays) == 8
    assert defaults.transient_delays[:4] == tuple(
        timedelta(minutes=minute) for minute in (5, 10, 20, 40)
    )
    assert defaults.unknown_schedule[:3] == (
        timedelta(minutes=5),
        timedelta(hours=1),
        timedelta(days=1),
    )
    assert defaults.unknown_schedule[-1] == timedelta(days=7)
    assert defaults.pending_schedule[:2] == (timedelta(hours=1), timedelta(days=1))
    assert defaults.pending_schedule[-1] == timedelta(days=6)
    assert (defaults.max_declines, defaults.max_attempts, defaults.max_days) == (
        5,
        10,
        30,
    )
    assert defaults.contact_issuer_retries == 3
    assert defaults.end_of_dunning is EndOfDunning.PAUSE


def test_overrides_are_stored_normalised() -> None:
    stored = policy.parse_overrides(
        {"soft_decline_schedule": "2d,4d", "max_declines": 3, "end_of_dunning": "skip"},
        record="store abc123xyz",
    )
    assert stored == {
        "soft_decline_schedule": ["2d", "4d"],
        "max_declines": 3,
        "end_of_dunning": "skip",
    }
    applied = policy.policy_for(stored)
    assert applied.soft_decline_schedule == (timedelta(days=2), timedelta(days=4))
    assert applied.max_declines == 3
    assert applied.end_of_dunning is EndOfDunning.SKIP
    assert applied.max_attempts == policy.DEFAULT_POLICY.max_attempts


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"max_retries": 3}, "max_retries", "unknown policy setting"),
        ({"max_declines": 0}, "max_declines", "out of range"),
        ({"max_declines": "5"}, "max_declines", "not an integer"),
        ({"max_days": True}, "max_days", "not an integer"),
        ({"end_of_dunning": "stop"}, "end_of_dunning", "use pause, skip, cancel"),
        ({"soft_decline_schedule": []}, "soft_decline_schedule", "non-empty"),
        (
            {"soft_decline_schedule": ["1d", "3x"]},
            "soft_decline_schedule[1]",
            "not a duration",
        ),
        (
            {"soft_decline_schedule": ["3d", "1d"]},
            "soft_decline_schedule[1]",
            "must increase",
        ),
        ({"transient_delays": ["0m"]}, "transient_delays[0]", "longer than 0"),
        ({"probe_delays": ["1m"] * 51}, "probe_delays", "at most 50"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_invalid_override_names_field(
    overrides: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        policy.parse_overrides(overrides, record="store abc123xyz")
    assert raised.value.field == field
    assert words in raised.value.message
    assert raised.value.record == "store abc123xyz"


def test_delays_may_repeat_but_schedules_may_not() -> None:
    stored = policy.parse_overrides(
        {"transient_delays": ["5m", "5m"]}, record="store abc123xyz"
    )
    assert stored == {"transient_delays": ["5m", "5m"]}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("2h", 7200), ("14d", 1_209_600)],
)
def test_durations_round_trip(text: str, seconds: int) -> None:
    value = policy.parse_duration(text)
    assert value == timedelta(seconds=seconds)
    assert policy.format_duration(value) == text


def test_describe_policy_lists_every_field() -> None:
    described = policy.describe_policy(policy.DEFAULT_POLICY)
    assert set(described) == set(policy.POLICY_FIELDS)
    assert described["soft_decline_schedule"] == ["1d", "3d", "7d", "14d"]
    assert described["end_of_dunning"] == "pause"
