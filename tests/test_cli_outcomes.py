"""`rebill failures`, `rebill cycles`, store pause, resume and policy commands."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner, Result

from models import AuditEntry, CycleState, SubscriptionStatus, utcnow
from rebill.cli import main
from tests.fixtures.billed_store import STORE_HASH, BilledStore

pytestmark = pytest.mark.usefixtures("restore_logging")


def run(billed_store: BilledStore, *args: str) -> Result:
    settings = billed_store.runtime.settings
    environment = {
        "REBILL_DATABASE_URL": settings.database_url,
        "REBILL_REDIS_URL": settings.redis_url,
    }
    return CliRunner().invoke(main, list(args), env=environment)


def declined(billed_store: BilledStore, code: int = 30106) -> int:
    customer, _ = billed_store.add_customer({"is_default": True, "behavior": code})
    billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    return billed_store.cycles()[-1].id


def test_failures_lists_unpaid_cycles(billed_store: BilledStore) -> None:
    declined_id = declined(billed_store, 30106)
    review_id = declined(billed_store, 10001)
    paid_customer, _ = billed_store.add_customer()
    billed_store.add_subscription(paid_customer)
    billed_store.tick_and_work()

    result = run(billed_store, "failures")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["cycle", "store", "subscription"]
    assert lines[-1] == "2 cycle(s) not paid"
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert set(rows) == {str(declined_id), str(review_id)}
    assert "retry_scheduled" in rows[str(declined_id)]
    assert "30106" in rows[str(declined_id)]
    assert "insufficient funds" in rows[str(declined_id)]
    assert "needs_review" in rows[str(review_id)]


def test_failures_filters_combine(billed_store: BilledStore) -> None:
    declined(billed_store, 30106)
    review_id = declined(billed_store, 10001)
    by_code = run(billed_store, "failures", "--code", "10001", "--json")
    assert by_code.exit_code == 0, by_code.output
    (row,) = [json.loads(line) for line in by_code.stdout.splitlines()]
    assert row["cycle_id"] == review_id
    assert row["store_hash"] == STORE_HASH
    assert row["last_error_code"] == 10001
    assert row["attempts"] == 1

    by_state = run(billed_store, "failures", "--state", "retry_scheduled", "--json")
    assert [
        json.loads(line)["last_error_code"] for line in by_state.stdout.splitlines()
    ] == [30106]
    other_store = run(billed_store, "failures", "--store", "zzz999")
    assert other_store.stdout.strip().endswith("0 cycle(s) not paid")


def test_failures_rejects_unknown_state(billed_store: BilledStore) -> None:
    result = run(billed_store, "failures", "--state", "broken")
    assert result.exit_code == 2
    assert "--state" in result.output


def test_cycles_show_lists_attempts(billed_store: BilledStore) -> None:
    cycle_id = declined(billed_store, 30106)
    result = run(billed_store, "cycles", "show", str(cycle_id))
    assert result.exit_code == 0, result.output
    assert f"cycle {cycle_id}: retry_scheduled" in result.output
    assert "attempt 1" in result.output
    assert "soft_decline code 30106" in result.output
    assert "ending 4242" in result.output


def test_cycles_approve_releases_late_renewal(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    billed_store.add_subscription(
        customer, next_billing_at=billed_store.now - timedelta(days=4)
    )
    billed_store.tick_and_work()
    cycle_id = billed_store.cycle().id
    assert billed_store.cycle().state == CycleState.NEEDS_REVIEW

    result = run(billed_store, "cycles", "approve", str(cycle_id))
    assert result.exit_code == 0, result.output
    assert f"cycle {cycle_id} approved" in result.output
    billed_store.now = utcnow()  # the command approved at the wall clock's time
    billed_store.tick_and_work()
    assert billed_store.cycle().state == CycleState.PAID
    with billed_store.runtime.sessions() as session:
        entry = session.query(AuditEntry).one()
        assert entry.action == "approve_cycle"
        assert entry.actor.startswith("cli ")


def test_cycles_approve_error_exits_nonzero(billed_store: BilledStore) -> None:
    cycle_id = declined(billed_store, 30106)
    result = run(billed_store, "cycles", "approve", str(cycle_id))
    assert result.exit_code == 1
    assert f"cycle {cycle_id}: cannot approve a cycle that is retry_scheduled" in (
        result.output
    )


def test_cycles_retry_and_skip(billed_store: BilledStore) -> None:
    retried = declined(billed_store, 30106)
    result = run(billed_store, "cycles", "retry", str(retried))
    assert result.exit_code == 0, result.output
    cycle = billed_store.cycle(retried)
    assert cycle.state == CycleState.RETRY_SCHEDULED
    assert cycle.next_attempt_at is not None
    assert cycle.next_attempt_at < billed_store.now + timedelta(hours=1)
    assert cycle.approved_by is not None
    skipped = run(billed_store, "cycles", "skip", str(retried))
    assert skipped.exit_code == 0, skipped.output
    assert billed_store.cycle(retried).state == CycleState.SKIPPED


def test_cycles_unknown_id(billed_store: BilledStore) -> None:
    result = run(billed_store, "cycles", "skip", "404")
    assert result.exit_code == 1
    assert "cycle 404 not found" in result.output


def test_subscription_cancel(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer()
    subscription_id = billed_store.add_subscription(customer)
    result = run(billed_store, "subscriptions", "cancel", str(subscription_id))
    assert result.exit_code == 0, result.output
    status = billed_store.subscription(subscription_id).status
    assert status == SubscriptionStatus.CANCELED


def test_store_pause_and_resume(billed_store: BilledStore) -> None:
    paused = run(billed_store, "stores", "pause", STORE_HASH, "--reason", "audit")
    assert paused.exit_code == 0, paused.output
    store = billed_store.store()
    assert store.billing_paused is True
    assert store.next_probe_at is None
    assert store.billing_paused_reason is not None
    assert store.billing_paused_reason.endswith(": audit")
    again = run(billed_store, "stores", "pause", STORE_HASH, "--reason", "audit")
    assert again.exit_code == 1
    assert "already paused" in again.output

    resumed = run(billed_store, "stores", "resume", STORE_HASH)
    assert resumed.exit_code == 0, resumed.output
    assert billed_store.store().billing_paused is False


def test_store_pause_unknown_store(billed_store: BilledStore) -> None:
    result = run(billed_store, "stores", "pause", "nope", "--reason", "x")
    assert result.exit_code == 1
    assert "store nope not found" in result.output


def test_policy_set_and_show(billed_store: BilledStore) -> None:
    result = run(
        billed_store,
        "stores", "policy", "set", STORE_HASH,
        "--soft-decline-schedule", "2d,5d",
        "--max-declines", "3",
        "--end-of-dunning", "cancel",
        "--billing-hour", "7",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    store = billed_store.store()
    assert store.retry_policy == {
        "soft_decline_schedule": ["2d", "5d"],
        "max_declines": 3,
        "end_of_dunning": "cancel",
    }
    assert store.billing_hour == 7

    shown = run(billed_store, "stores", "policy", "show", STORE_HASH)
    assert shown.exit_code == 0, shown.output
    assert "soft_decline_schedule: 2d,5d *" in shown.output
    assert "max_attempts: 10\n" in shown.output
    assert "billing_hour: 7" in shown.output


def test_policy_set_rejects_bad_value(billed_store: BilledStore) -> None:
    result = run(
        billed_store,
        "stores", "policy", "set", STORE_HASH,
        "--soft-decline-schedule", "3d,1d",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--soft-decline-schedule" in result.output
    assert "must increase" in result.output
    assert billed_store.store().retry_policy == {}


def test_policy_set_rejects_bad_hour(billed_store: BilledStore) -> None:
    result = run(
        billed_store, "stores", "policy", "set", STORE_HASH, "--billing-hour", "24"
    )
    assert result.exit_code == 2
    assert "--billing-hour" in result.output


def test_policy_billing_hour_none(billed_store: BilledStore) -> None:
    result = run(
        billed_store, "stores", "policy", "set", STORE_HASH, "--billing-hour", "none"
    )
    assert result.exit_code == 0, result.output
    assert billed_store.store().billing_hour is None


def test_policy_reset(billed_store: BilledStore) -> None:
    billed_store.set_store(retry_policy={"max_declines": 2, "max_days": 10})
    partial = run(billed_store, "stores", "policy", "reset", STORE_HASH, "max_days")
    assert partial.exit_code == 0, partial.output
    assert billed_store.store().retry_policy == {"max_declines": 2}
    everything = run(billed_store, "stores", "policy", "reset", STORE_HASH)
    assert everything.exit_code == 0, everything.output
    assert billed_store.store().retry_policy == {}
    unknown = run(billed_store, "stores", "policy", "reset", STORE_HASH, "speed")
    assert unknown.exit_code == 2
    assert "unknown setting(s) speed" in unknown.output
