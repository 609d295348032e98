"""Pure decisions: what happens to a cycle after an attempt or a check.

Each function takes plain values (the outcome, the cycle's attempt history, the
store's Policy and `now`) and returns a Decision: the cycle's next state, its
next_attempt_at and what else changes. Nothing here reads the clock, the
database or the network; worker.renewal and scheduler.reconcile apply the
decisions.

Caps that hold for every cycle: at most `max_declines` declines,
`max_attempts` counted attempts and `max_days` days from the first attempt.
A cycle that reaches a cap after the customer's instruments were declined ends
with the end-of-dunning action. A cycle that reaches a cap for other reasons
waits in review.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from models import CycleState, EndOfDunning, OutcomeClass, SubscriptionStatus
from rebill.policy import Policy

DECLINES = (OutcomeClass.SOFT_DECLINE, OutcomeClass.HARD_DECLINE)
# Outcomes that count toward max_attempts. Transient failures, merchant
# configuration errors and attempts ended before a payment was sent do not.
COUNTED_OUTCOMES = (
    OutcomeClass.PAID,
    OutcomeClass.PENDING,
    OutcomeClass.UNKNOWN,
    OutcomeClass.SOFT_DECLINE,
    OutcomeClass.HARD_DECLINE,
    OutcomeClass.ORDER_PROBLEM,
    OutcomeClass.OUR_DATA,
)
CONTACT_ISSUER = 30104
DUPLICATE_TRANSACTION = 30105


@dataclass(frozen=True)
class AttemptRecord:
    """One finished attempt, as the decisions see it."""

    outcome: OutcomeClass
    started_at: datetime
    finished_at: datetime
    http_status: int | None = None
    error_code: int | None = None
    payment_sent: bool = False
    instrument_fingerprint: str | None = None

    @property
    def pat_rejected(self) -> bool:
        return self.payment_sent and self.http_status == 401


@dataclass(frozen=True)
class CycleFacts:
    """What the decisions know of a cycle and its store.

    `history` contains every finished attempt, oldest first, including the one
    being decided.
    """

    history: tuple[AttemptRecord, ...] = ()
    wait_started_at: datetime | None = None
    wait_checks: int = 0
    order_rebuilds: int = 0
    store_timezone: str = "UTC"
    billing_hour: int | None = None
    end_of_dunning: EndOfDunning = EndOfDunning.PAUSE

    @property
    def declines(self) -> int:
        return sum(1 for item in self.history if item.outcome in DECLINES)

    @property
    def counted_attempts(self) -> int:
        return sum(1 for item in self.history if item.outcome in COUNTED_OUTCOMES)

    @property
    def first_attempt_at(self) -> datetime | None:
        return self.history[0].started_at if self.history else None

    @property
    def first_decline_at(self) -> datetime | None:
        for item in self.history:
            if item.outcome in DECLINES:
                return item.finished_at
        return None

    def count_code(self, code: int) -> int:
        return sum(1 for item in self.history if item.error_code == code)

    def trailing(self, outcome: OutcomeClass) -> list[AttemptRecord]:
        """Return the attempts of `outcome` at the end of the history.

        Attempts that ended before a payment was sent (NOT_CHARGED) are
        skipped, so a rate-limit wait does not break a run of failures.
        """
        run: list[AttemptRecord] = []
        for item in reversed(self.history):
            if item.outcome is OutcomeClass.NOT_CHARGED:
                continue
            if item.outcome is not outcome:
                break
            run.append(item)
        return run


@dataclass(frozen=True)
class Decision:
    """The next state of a cycle and the changes that go with it.

    `subscription_status` is applied only to a subscription that is active or
    past due, so an operator's pause or cancel is never undone. `wait_started_at`
    and `wait_checks` are written as given.
    """

    state: CycleState
    next_attempt_at: datetime | None
    reason: str
    subscription_status: SubscriptionStatus | None = None
    pause_store: bool = False
    rebuild_order: bool = False
    wait_started_at: datetime | None = None
    wait_checks: int = 0


class Finding(enum.StrEnum):
    """Result of reading an order and its transactions."""

    PAID = "paid"  # a successful purchase, capture or authorization exists
    PENDING = "pending"  # a payment waits to settle
    NOT_PAID = "not_paid"  # no payment, order still Incomplete (status 0)
    UNPAYABLE = "unpayable"  # no payment, order gone or out of status 0
    MARKED_PAID = "marked_paid"  # order in a paid status without a payment
    UNRESOLVED = "unresolved"  # the order could not be read


def review(reason: str) -> Decision:
    return Decision(CycleState.NEEDS_REVIEW, None, reason)


def paid() -> Decision:
    return Decision(
        CycleState.PAID,
        None,
        "paid",
        subscription_status=SubscriptionStatus.ACTIVE,
    )


def end_of_dunning(facts: CycleFacts, cause: str) -> Decision:
    """Fail the cycle and apply the subscription's end-of-dunning action."""
    status = {
        EndOfDunning.PAUSE: SubscriptionStatus.PAUSED,
        EndOfDunning.SKIP: SubscriptionStatus.ACTIVE,
        EndOfDunning.CANCEL: SubscriptionStatus.CANCELED,
    }[facts.end_of_dunning]
    return Decision(
        CycleState.FAILED,
        None,
        f"{cause}; end of dunning: {facts.end_of_dunning} the subscription",
        subscription_status=status,
    )


def at_billing_hour(moment: datetime, timezone: str, hour: int | None) -> datetime:
    """Move `moment` to the billing hour of its local day in `timezone`."""
    if hour is None:
        return moment
    zone = ZoneInfo(timezone)
    local_day = moment.astimezone(zone).date()
    return datetime.combine(local_day, time(hour), zone).astimezone(moment.tzinfo)


def next_billing_slot(
    anchor: datetime, offset: timedelta, facts: CycleFacts, now: datetime
) -> datetime:
    """Return anchor + offset at the store's billing hour, never before `now`."""
    slot = at_billing_hour(anchor + offset, facts.store_timezone, facts.billing_hour)
    while slot <= now:
        if facts.billing_hour is None:
            return now
        slot = at_billing_hour(
            slot + timedelta(days=1), facts.store_timezone, facts.billing_hour
        )
    return slot


def cap_reached(facts: CycleFacts, policy: Policy, when: datetime) -> str | None:
    """Return why a retry at `when` breaks a cap, or None if it does not."""
    if facts.declines >= policy.max_declines:
        return f"{facts.declines} declines (the cap is {policy.max_declines})"
    if facts.counted_attempts >= policy.max_attempts:
        return f"{facts.counted_attempts} attempts (the cap is {policy.max_attempts})"
    first = facts.first_attempt_at
    if first is not None and when > first + timedelta(days=policy.max_days):
        return f"a retry would fall more than {policy.max_days} days after the first"
    return None


def retry_or_stop(
    facts: CycleFacts,
    policy: Policy,
    when: datetime,
    reason: str,
    *,
    dunning: bool,
    **changes: object,
) -> Decision:
    """Schedule a retry at `when` unless a cap forbids it.

    A stopped retry ends dunning when the customer's instruments were declined
    (`dunning`, or any decline in the history) and waits in review otherwise.
    """
    cap = cap_reached(facts, policy, when)
    if cap is None:
        status = SubscriptionStatus.PAST_DUE if dunning else None
        return Decision(
            CycleState.RETRY_SCHEDULED,
            when,
            reason,
            subscription_status=status,
            **changes,  # type: ignore[arg-type]
        )
    cause = f"{reason}; no retry after {cap}"
    if dunning or facts.declines:
        return end_of_dunning(facts, cause)
    return review(cause)


def decide_after_attempt(
    outcome: OutcomeClass,
    facts: CycleFacts,
    policy: Policy,
    now: datetime,
    *,
    message: str,
    retry_after: float | None = None,
) -> Decision:
    """Decide what follows an attempt that ended with `outcome` at `now`."""
    if outcome is OutcomeClass.PAID:
        return paid()
    if outcome is OutcomeClass.PENDING:
        return start_wait(CycleState.PENDING, policy.pending_schedule, message, now)
    if outcome is OutcomeClass.UNKNOWN:
        return start_wait(CycleState.UNKNOWN, policy.unknown_schedule, message, now)
    if outcome is OutcomeClass.ORDER_PROBLEM:
        # Read the order before anything else: it may be paid already.
        return Decision(CycleState.UNKNOWN, now, message, wait_started_at=now)
    if outcome is OutcomeClass.TRANSIENT:
        return after_transient(facts, policy, now, message, retry_after)
    if outcome is OutcomeClass.SOFT_DECLINE:
        return after_soft_decline(facts, policy, now, message)
    if outcome is OutcomeClass.HARD_DECLINE:
        return retry_or_stop(facts, policy, now, message, dunning=True)
    if outcome is OutcomeClass.MERCHANT_CONFIG:
        return pause_for_merchant(message, now)
    return review(message)


def start_wait(
    state: CycleState, schedule: Sequence[timedelta], reason: str, now: datetime
) -> Decision:
    return Decision(state, now + schedule[0], reason, wait_started_at=now)


def pause_for_merchant(reason: str, now: datetime) -> Decision:
    """Hold the cycle, unconsumed, until the store's billing resumes."""
    return Decision(CycleState.RETRY_SCHEDULED, now, reason, pause_store=True)


def after_transient(
    facts: CycleFacts,
    policy: Policy,
    now: datetime,
    reason: str,
    retry_after: float | None,
) -> Decision:
    run = facts.trailing(OutcomeClass.TRANSIENT)
    if len(run) >= 2 and run[0].pat_rejected and run[1].pat_rejected:
        return pause_for_merchant(f"{reason}; the PAT was rejected twice in a row", now)
    if len(run) > len(policy.transient_delays):
        return review(f"{reason}; {len(run)} transient failures in a row")
    if retry_after is not None:
        # A 429 that announces its reset is retried right after it.
        delay = timedelta(seconds=retry_after)
    else:
        delay = policy.transient_delays[max(len(run), 1) - 1]
    return Decision(CycleState.RETRY_SCHEDULED, now + delay, reason)


def after_soft_decline(
    facts: CycleFacts, policy: Policy, now: datetime, reason: str
) -> Decision:
    if facts.declines >= policy.max_declines:
        return end_of_dunning(
            facts,
            f"{reason}; no retry after {facts.declines} declines (the cap is "
            f"{policy.max_declines})",
        )
    contact_issuer = facts.count_code(CONTACT_ISSUER)
    if contact_issuer > policy.contact_issuer_retries:
        return end_of_dunning(
            facts,
            f"{reason}; code {CONTACT_ISSUER} came {contact_issuer} times (at most "
            f"{policy.contact_issuer_retries} retries)",
        )
    soft = sum(1 for item in facts.history if item.outcome is OutcomeClass.SOFT_DECLINE)
    if soft > len(policy.soft_decline_schedule):
        return end_of_dunning(facts, f"{reason}; the retry schedule is exhausted")
    anchor = facts.first_decline_at or now
    when = next_billing_slot(anchor, policy.soft_decline_schedule[soft - 1], facts, now)
    return retry_or_stop(facts, policy, when, reason, dunning=True)


def decide_no_instrument(
    facts: CycleFacts, policy: Policy, now: datetime, reason: str
) -> Decision:
    """Wait for a new instrument when none of the customer's can be charged."""
    started = facts.wait_started_at or now
    return next_instrument_check(facts, policy, now, reason, started, checks=0)


def decide_instrument_check(
    found_new: bool, facts: CycleFacts, policy: Policy, now: datetime
) -> Decision:
    """Decide after looking for a new instrument for an AWAITING_INSTRUMENT cycle."""
    if found_new:
        return Decision(
            CycleState.RETRY_SCHEDULED, now, "a new stored instrument appeared"
        )
    started = facts.wait_started_at or now
    return next_instrument_check(
        facts,
        policy,
        now,
        "no new stored instrument yet",
        started,
        checks=facts.wait_checks + 1,
    )


def next_instrument_check(
    facts: CycleFacts,
    policy: Policy,
    now: datetime,
    reason: str,
    started: datetime,
    *,
    checks: int,
) -> Decision:
    """Schedule the next look for an instrument on the soft-decline schedule."""
    anchor = facts.first_decline_at or started
    for offset in policy.soft_decline_schedule:
        slot = at_billing_hour(
            anchor + offset, facts.store_timezone, facts.billing_hour
        )
        if slot > now:
            break
    else:
        return end_of_dunning(facts, f"{reason}; the retry schedule is exhausted")
    first = facts.first_attempt_at
    if first is not None and slot > first + timedelta(days=policy.max_days):
        return end_of_dunning(facts, f"{reason}; the {policy.max_days}-day cap is up")
    return Decision(
        CycleState.AWAITING_INSTRUMENT,
        slot,
        reason,
        subscription_status=SubscriptionStatus.PAST_DUE,
        wait_started_at=started,
        wait_checks=checks,
    )


def decide_reconcile(
    finding: Finding,
    state: CycleState,
    facts: CycleFacts,
    policy: Policy,
    now: datetime,
    *,
    detail: str,
) -> Decision:
    """Decide after reading the order of an UNKNOWN or PENDING cycle.

    The cause is the last attempt's outcome. Nothing leads to a new charge
    unless the order is still Incomplete and has no payment, and never after
    code 30105 (duplicate transaction).
    """
    if finding is Finding.PAID:
        return paid()
    if finding is Finding.PENDING:
        return keep_pending(state, facts, policy, now, detail)
    if finding is Finding.UNRESOLVED:
        return next_check(state, facts, policy, now, detail)
    if finding is Finding.MARKED_PAID:
        return review(f"{detail}; confirm the payment in the control panel")
    last = facts.history[-1] if facts.history else None
    if last is not None and last.error_code == DUPLICATE_TRANSACTION:
        return review(
            f"{detail}; BigCommerce reported a duplicate transaction (code "
            f"{DUPLICATE_TRANSACTION}), so rebill never charges this cycle again"
        )
    cause = last.outcome if last is not None else None
    if cause is OutcomeClass.PENDING:
        return after_failed_settlement(facts, policy, now, detail)
    if cause is OutcomeClass.ORDER_PROBLEM:
        return rebuild_or_review(facts, policy, now, detail)
    if finding is Finding.NOT_PAID:
        return retry_or_stop(facts, policy, now, detail, dunning=False)
    return review(f"{detail}; the order left Incomplete without a payment")


def keep_pending(
    state: CycleState,
    facts: CycleFacts,
    policy: Policy,
    now: datetime,
    detail: str,
) -> Decision:
    if state is not CycleState.PENDING:
        return start_wait(CycleState.PENDING, policy.pending_schedule, detail, now)
    return next_check(state, facts, policy, now, detail)


def next_check(
    state: CycleState,
    facts: CycleFacts,
    policy: Policy,
    now: datetime,
    detail: str,
) -> Decision:
    """Schedule the next reconcile check, or review when the schedule is over."""
    schedule = (
        policy.pending_schedule
        if state is CycleState.PENDING
        else policy.unknown_schedule
    )
    checks = facts.wait_checks + 1
    started = facts.wait_started_at or now
    if checks >= len(schedule):
        return review(f"{detail}; still {state} after {len(schedule)} checks")
    return Decision(
        state,
        max(started + schedule[checks], now),
        detail,
        wait_started_at=started,
        wait_checks=checks,
    )


def after_failed_settlement(
    facts: CycleFacts, policy: Policy, now: datetime, detail: str
) -> Decision:
    """A pending payment settled as declined: dunning on a new order."""
    if facts.order_rebuilds >= policy.max_order_rebuilds:
        return review(f"{detail}; the order was already rebuilt")
    anchor = facts.first_decline_at or now
    when = next_billing_slot(anchor, policy.soft_decline_schedule[0], facts, now)
    return retry_or_stop(
        facts,
        policy,
        when,
        f"{detail}; the pending payment was declined",
        dunning=True,
        rebuild_order=True,
    )


def rebuild_or_review(
    facts: CycleFacts, policy: Policy, now: datetime, detail: str
) -> Decision:
    if facts.order_rebuilds >= policy.max_order_rebuilds:
        return review(
            f"{detail}; the order was rebuilt {facts.order_rebuilds} time(s) already"
        )
    return retry_or_stop(
        facts,
        policy,
        now,
        f"{detail}; creating a new order",
        dunning=False,
        rebuild_order=True,
    )


def next_probe_at(probe_count: int, policy: Policy, now: datetime) -> datetime:
    """Return when to probe a paused store again; the last delay repeats."""
    delays = policy.probe_delays
    return now + delays[min(probe_count, len(delays) - 1)]


def is_stale(
    due_at: datetime, now: datetime, stale_after: timedelta, *, approved: bool
) -> bool:
    """Return True for a renewal so late that an operator must approve it."""
    return not approved and now - due_at > stale_after
