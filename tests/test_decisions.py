"""Pure decisions: next state and next_attempt_at for every kind of outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models import CycleState, EndOfDunning, OutcomeClass, SubscriptionStatus
from rebill.decisions import (
    AttemptRecord,
    CycleFacts,
    Finding,
    at_billing_hour,
    decide_after_attempt,
    decide_instrument_check,
    decide_no_instrument,
    decide_reconcile,
    is_stale,
    next_probe_at,
)
from rebill.policy import DEFAULT_POLICY

# A Friday afternoon in Chicago (UTC-6 in December).
NOW = datetime(2026, 12, 4, 21, 30, tzinfo=UTC)
CHICAGO = "America/Chicago"


def attempt(
    outcome: OutcomeClass,
    at: datetime = NOW,
    *,
    code: int | None = None,
    status: int | None = None,
    sent: bool = True,
    fingerprint: str | None = None,
) -> AttemptRecord:
    return AttemptRecord(
        outcome=outcome,
        started_at=at,
        finished_at=at,
        http_status=status,
        error_code=code,
        payment_sent=sent,
        instrument_fingerprint=fingerprint,
    )


def facts(*history: AttemptRecord, **values: object) -> CycleFacts:
    defaults: dict[str, object] = {"store_timezone": CHICAGO, "billing_hour": 9}
    return CycleFacts(history=history, **{**defaults, **values})  # type: ignore[arg-type]


def decline(at: datetime, code: int = 30106) -> AttemptRecord:
    return attempt(OutcomeClass.SOFT_DECLINE, at, code=code, status=422)


def chicago(day: int, hour: int) -> datetime:
    """Return 2026-12-`day` at `hour`:00 in Chicago, as UTC."""
    return datetime(2026, 12, day, tzinfo=UTC) + timedelta(hours=hour + 6)


def test_paid_returns_subscription_to_active() -> None:
    decision = decide_after_attempt(
        OutcomeClass.PAID,
        facts(attempt(OutcomeClass.PAID)),
        DEFAULT_POLICY,
        NOW,
        message="purchase success",
    )
    assert decision.state is CycleState.PAID
    assert decision.next_attempt_at is None
    assert decision.subscription_status is SubscriptionStatus.ACTIVE


def test_soft_decline_retries_at_billing_hour() -> None:
    decision = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(decline(NOW)),
        DEFAULT_POLICY,
        NOW,
        message="code 30106",
    )
    assert decision.state is CycleState.RETRY_SCHEDULED
    assert decision.next_attempt_at == chicago(5, 9)
    assert decision.subscription_status is SubscriptionStatus.PAST_DUE


def test_soft_decline_schedule_counts_from_first_decline() -> None:
    history = (decline(NOW), decline(chicago(5, 9)), decline(chicago(7, 9)))
    decision = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(*history),
        DEFAULT_POLICY,
        chicago(7, 9),
        message="code 30106",
    )
    # Third decline: the third offset, 7 days after the first decline.
    assert decision.next_attempt_at == chicago(11, 9)


def test_billing_hour_never_before_now() -> None:
    evening = chicago(4, 22)
    decision = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(decline(evening)),
        replace(DEFAULT_POLICY, soft_decline_schedule=(timedelta(minutes=5),)),
        evening,
        message="code 30106",
    )
    assert decision.next_attempt_at == chicago(5, 9)


def test_without_billing_hour_exact_offset() -> None:
    decision = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(decline(NOW), billing_hour=None),
        DEFAULT_POLICY,
        NOW,
        message="code 30106",
    )
    assert decision.next_attempt_at == NOW + timedelta(days=1)


def test_billing_hour_follows_daylight_saving() -> None:
    summer = datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert at_billing_hour(summer, CHICAGO, 9) == datetime(2026, 7, 1, 14, tzinfo=UTC)
    assert at_billing_hour(NOW, CHICAGO, 9) == chicago(4, 9)


def test_fifth_decline_ends_dunning_with_pause() -> None:
    history = tuple(decline(NOW + timedelta(days=day)) for day in (0, 1, 3, 7, 14))
    decision = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(*history),
        DEFAULT_POLICY,
        NOW + timedelta(days=14),
        message="code 30106",
    )
    assert decision.state is CycleState.FAILED
    assert decision.next_attempt_at is None
    assert decision.subscription_status is SubscriptionStatus.PAUSED
    assert "5 declines" in decision.reason


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (EndOfDunning.PAUSE, SubscriptionStatus.PAUSED),
        (EndOfDunning.SKIP, SubscriptionStatus.ACTIVE),
        (EndOfDunning.CANCEL, SubscriptionStatus.CANCELED),
    ],
)
def test_end_of_dunning_action(
    action: EndOfDunning, status: SubscriptionStatus
) -> None:
    policy = replace(DEFAULT_POLICY, max_declines=1)
    decision = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(decline(NOW), end_of_dunning=action),
        policy,
        NOW,
        message="code 30106",
    )
    assert decision.state is CycleState.FAILED
    assert decision.subscription_status is status
    assert f"end of dunning: {action}" in decision.reason


def test_contact_issuer_allows_three_retries() -> None:
    days = (0, 1, 3, 7)
    history = [decline(NOW + timedelta(days=day), code=30104) for day in days[:3]]
    third = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(*history),
        DEFAULT_POLICY,
        NOW + timedelta(days=3),
        message="code 30104",
    )
    assert third.state is CycleState.RETRY_SCHEDULED
    history.append(decline(NOW + timedelta(days=7), code=30104))
    fourth = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(*history),
        DEFAULT_POLICY,
        NOW + timedelta(days=7),
        message="code 30104",
    )
    assert fourth.state is CycleState.FAILED
    assert "30104" in fourth.reason


def test_thirty_day_cap_stops_retry() -> None:
    policy = replace(DEFAULT_POLICY, soft_decline_schedule=(timedelta(days=40),))
    decision = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(decline(NOW)),
        policy,
        NOW,
        message="code 30106",
    )
    assert decision.state is CycleState.FAILED
    assert "30 days" in decision.reason


def test_attempt_cap_without_declines_goes_to_review() -> None:
    history = [attempt(OutcomeClass.UNKNOWN) for _ in range(10)]
    decision = decide_reconcile(
        Finding.NOT_PAID,
        CycleState.UNKNOWN,
        facts(*history),
        DEFAULT_POLICY,
        NOW,
        detail="no payment found",
    )
    assert decision.state is CycleState.NEEDS_REVIEW
    assert "10 attempts" in decision.reason


def test_hard_decline_tries_next_instrument_now() -> None:
    decision = decide_after_attempt(
        OutcomeClass.HARD_DECLINE,
        facts(attempt(OutcomeClass.HARD_DECLINE, code=30103, fingerprint="a")),
        DEFAULT_POLICY,
        NOW,
        message="code 30103",
    )
    assert decision.state is CycleState.RETRY_SCHEDULED
    assert decision.next_attempt_at == NOW
    assert decision.subscription_status is SubscriptionStatus.PAST_DUE


def test_transient_backs_off_then_reviews() -> None:
    run: list[AttemptRecord] = []
    expected_minutes = (5, 10, 20, 40, 80, 160, 320, 640)
    for minutes in expected_minutes:
        run.append(attempt(OutcomeClass.TRANSIENT, sent=False))
        decision = decide_after_attempt(
            OutcomeClass.TRANSIENT,
            facts(*run),
            DEFAULT_POLICY,
            NOW,
            message="HTTP 5xx from the store API",
        )
        assert decision.next_attempt_at == NOW + timedelta(minutes=minutes)
        assert decision.subscription_status is None
    run.append(attempt(OutcomeClass.TRANSIENT, sent=False))
    ninth = decide_after_attempt(
        OutcomeClass.TRANSIENT, facts(*run), DEFAULT_POLICY, NOW, message="5xx"
    )
    assert ninth.state is CycleState.NEEDS_REVIEW
    assert "9 transient failures" in ninth.reason


def test_rate_limit_waits_announced_reset() -> None:
    decision = decide_after_attempt(
        OutcomeClass.TRANSIENT,
        facts(attempt(OutcomeClass.TRANSIENT, status=429)),
        DEFAULT_POLICY,
        NOW,
        message="HTTP 429",
        retry_after=3.5,
    )
    assert decision.next_attempt_at == NOW + timedelta(seconds=3.5)


def test_wait_between_transients_does_not_reset_run() -> None:
    history = (
        attempt(OutcomeClass.TRANSIENT, sent=False),
        attempt(OutcomeClass.NOT_CHARGED, sent=False),
        attempt(OutcomeClass.TRANSIENT, sent=False),
    )
    decision = decide_after_attempt(
        OutcomeClass.TRANSIENT, facts(*history), DEFAULT_POLICY, NOW, message="5xx"
    )
    assert decision.next_attempt_at == NOW + timedelta(minutes=10)


def test_second_pat_rejection_pauses_store() -> None:
    rejected = attempt(OutcomeClass.TRANSIENT, status=401, code=10001)
    first = decide_after_attempt(
        OutcomeClass.TRANSIENT, facts(rejected), DEFAULT_POLICY, NOW, message="401"
    )
    assert first.pause_store is False
    assert first.next_attempt_at == NOW + timedelta(minutes=5)
    second = decide_after_attempt(
        OutcomeClass.TRANSIENT,
        facts(rejected, rejected),
        DEFAULT_POLICY,
        NOW,
        message="401",
    )
    assert second.pause_store is True
    assert second.state is CycleState.RETRY_SCHEDULED
    assert second.next_attempt_at == NOW


def test_merchant_config_holds_cycle_and_pauses_store() -> None:
    decision = decide_after_attempt(
        OutcomeClass.MERCHANT_CONFIG,
        facts(attempt(OutcomeClass.MERCHANT_CONFIG, code=30000)),
        DEFAULT_POLICY,
        NOW,
        message="code 30000",
    )
    assert decision.pause_store is True
    assert decision.state is CycleState.RETRY_SCHEDULED
    assert decision.subscription_status is None


def test_merchant_config_consumes_no_dunning() -> None:
    history = [attempt(OutcomeClass.MERCHANT_CONFIG, code=30000) for _ in range(12)]
    history.append(decline(NOW))
    decision = decide_after_attempt(
        OutcomeClass.SOFT_DECLINE,
        facts(*history),
        DEFAULT_POLICY,
        NOW,
        message="code 30106",
    )
    assert decision.state is CycleState.RETRY_SCHEDULED


@pytest.mark.parametrize(
    ("outcome", "state", "delay"),
    [
        (OutcomeClass.UNKNOWN, CycleState.UNKNOWN, timedelta(minutes=5)),
        (OutcomeClass.PENDING, CycleState.PENDING, timedelta(hours=1)),
        (OutcomeClass.ORDER_PROBLEM, CycleState.UNKNOWN, timedelta(0)),
    ],
)
def test_outcome_starts_reconcile_wait(
    outcome: OutcomeClass, state: CycleState, delay: timedelta
) -> None:
    decision = decide_after_attempt(
        outcome, facts(attempt(outcome)), DEFAULT_POLICY, NOW, message="m"
    )
    assert decision.state is state
    assert decision.next_attempt_at == NOW + delay
    assert decision.wait_started_at == NOW
    assert decision.wait_checks == 0


def test_our_data_goes_to_review() -> None:
    decision = decide_after_attempt(
        OutcomeClass.OUR_DATA,
        facts(attempt(OutcomeClass.OUR_DATA, code=10001)),
        DEFAULT_POLICY,
        NOW,
        message="code 10001: invalid data",
    )
    assert decision.state is CycleState.NEEDS_REVIEW
    assert decision.reason == "code 10001: invalid data"


def unknown_facts(checks: int = 0, code: int | None = None) -> CycleFacts:
    return facts(
        attempt(OutcomeClass.UNKNOWN, code=code),
        wait_started_at=NOW,
        wait_checks=checks,
    )


def test_reconcile_paid_marks_paid() -> None:
    decision = decide_reconcile(
        Finding.PAID,
        CycleState.UNKNOWN,
        unknown_facts(),
        DEFAULT_POLICY,
        NOW,
        detail="transaction 1",
    )
    assert decision.state is CycleState.PAID


def test_reconcile_unpaid_incomplete_order_retries() -> None:
    decision = decide_reconcile(
        Finding.NOT_PAID,
        CycleState.UNKNOWN,
        unknown_facts(),
        DEFAULT_POLICY,
        NOW,
        detail="no payment",
    )
    assert decision.state is CycleState.RETRY_SCHEDULED
    assert decision.next_attempt_at == NOW
    assert decision.rebuild_order is False


def test_reconcile_never_recharges_duplicate() -> None:
    decision = decide_reconcile(
        Finding.NOT_PAID,
        CycleState.UNKNOWN,
        unknown_facts(code=30105),
        DEFAULT_POLICY,
        NOW,
        detail="no payment",
    )
    assert decision.state is CycleState.NEEDS_REVIEW
    assert "30105" in decision.reason


def test_reconcile_unresolved_follows_schedule() -> None:
    later = NOW + timedelta(minutes=5)
    decision = decide_reconcile(
        Finding.UNRESOLVED,
        CycleState.UNKNOWN,
        unknown_facts(checks=0),
        DEFAULT_POLICY,
        later,
        detail="order not read",
    )
    assert decision.state is CycleState.UNKNOWN
    assert decision.next_attempt_at == NOW + timedelta(hours=1)
    assert decision.wait_checks == 1
    assert decision.wait_started_at == NOW


def test_reconcile_schedule_end_goes_to_review() -> None:
    last = len(DEFAULT_POLICY.unknown_schedule) - 1
    decision = decide_reconcile(
        Finding.UNRESOLVED,
        CycleState.UNKNOWN,
        unknown_facts(checks=last),
        DEFAULT_POLICY,
        NOW + timedelta(days=7),
        detail="order not read",
    )
    assert decision.state is CycleState.NEEDS_REVIEW
    assert "still unknown after 9 checks" in decision.reason


def test_reconcile_pending_switches_to_pending_schedule() -> None:
    decision = decide_reconcile(
        Finding.PENDING,
        CycleState.UNKNOWN,
        unknown_facts(),
        DEFAULT_POLICY,
        NOW,
        detail="pending",
    )
    assert decision.state is CycleState.PENDING
    assert decision.next_attempt_at == NOW + timedelta(hours=1)


def test_order_problem_rebuilds_once_then_reviews() -> None:
    problem = facts(attempt(OutcomeClass.ORDER_PROBLEM, code=30004))
    first = decide_reconcile(
        Finding.NOT_PAID,
        CycleState.UNKNOWN,
        problem,
        DEFAULT_POLICY,
        NOW,
        detail="no payment",
    )
    assert first.rebuild_order is True
    assert first.state is CycleState.RETRY_SCHEDULED
    again = decide_reconcile(
        Finding.UNPAYABLE,
        CycleState.UNKNOWN,
        replace(problem, order_rebuilds=1),
        DEFAULT_POLICY,
        NOW,
        detail="order not found",
    )
    assert again.state is CycleState.NEEDS_REVIEW
    assert again.rebuild_order is False


def test_unknown_order_left_incomplete_goes_to_review() -> None:
    decision = decide_reconcile(
        Finding.UNPAYABLE,
        CycleState.UNKNOWN,
        unknown_facts(),
        DEFAULT_POLICY,
        NOW,
        detail="order status_id is 5",
    )
    assert decision.state is CycleState.NEEDS_REVIEW


def test_marked_paid_without_payment_goes_to_review() -> None:
    decision = decide_reconcile(
        Finding.MARKED_PAID,
        CycleState.UNKNOWN,
        unknown_facts(),
        DEFAULT_POLICY,
        NOW,
        detail="order status_id is 11",
    )
    assert decision.state is CycleState.NEEDS_REVIEW


def test_failed_settlement_enters_dunning_on_new_order() -> None:
    pending = facts(attempt(OutcomeClass.PENDING), wait_started_at=NOW)
    decision = decide_reconcile(
        Finding.UNPAYABLE,
        CycleState.PENDING,
        pending,
        DEFAULT_POLICY,
        NOW,
        detail="order status_id is 6",
    )
    assert decision.state is CycleState.RETRY_SCHEDULED
    assert decision.rebuild_order is True
    assert decision.next_attempt_at == chicago(5, 9)
    assert decision.subscription_status is SubscriptionStatus.PAST_DUE


def test_no_instrument_waits_on_dunning_schedule() -> None:
    decision = decide_no_instrument(facts(), DEFAULT_POLICY, NOW, "none usable")
    assert decision.state is CycleState.AWAITING_INSTRUMENT
    assert decision.next_attempt_at == chicago(5, 9)
    assert decision.wait_started_at == NOW
    assert decision.subscription_status is SubscriptionStatus.PAST_DUE


def test_instrument_check_moves_to_next_slot() -> None:
    waiting = facts(wait_started_at=NOW, wait_checks=0)
    decision = decide_instrument_check(False, waiting, DEFAULT_POLICY, chicago(5, 9))
    assert decision.state is CycleState.AWAITING_INSTRUMENT
    assert decision.next_attempt_at == chicago(7, 9)
    assert decision.wait_checks == 1


def test_instrument_found_retries_now() -> None:
    waiting = facts(wait_started_at=NOW, wait_checks=1)
    decision = decide_instrument_check(True, waiting, DEFAULT_POLICY, chicago(7, 9))
    assert decision.state is CycleState.RETRY_SCHEDULED
    assert decision.next_attempt_at == chicago(7, 9)


def test_instrument_wait_ends_dunning() -> None:
    waiting = facts(wait_started_at=NOW, wait_checks=3)
    decision = decide_instrument_check(False, waiting, DEFAULT_POLICY, chicago(18, 9))
    assert decision.state is CycleState.FAILED
    assert decision.subscription_status is SubscriptionStatus.PAUSED


def test_probe_delays_repeat_last() -> None:
    assert next_probe_at(0, DEFAULT_POLICY, NOW) == NOW + timedelta(minutes=15)
    assert next_probe_at(1, DEFAULT_POLICY, NOW) == NOW + timedelta(hours=1)
    assert next_probe_at(9, DEFAULT_POLICY, NOW) == NOW + timedelta(hours=12)


def test_staleness() -> None:
    three_days = timedelta(days=3)
    late = NOW - timedelta(days=3, seconds=1)
    assert is_stale(late, NOW, three_days, approved=False)
    assert not is_stale(late, NOW, three_days, approved=True)
    assert not is_stale(NOW - three_days, NOW, three_days, approved=False)
