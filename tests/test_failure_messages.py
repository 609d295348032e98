"""A declined renewal's message names its error code once, wherever it is shown.

The code has its own column (charge_attempts.error_code, last_error_code), and
`rebill failures`, `rebill cycles show`, the dashboard and the demo summary show
it beside the message, so the stored message must not start with it too.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from rebill.cli import main
from tests.fixtures.billed_store import BilledStore

pytestmark = pytest.mark.usefixtures("restore_logging")

DECLINE_TEXT = "The payment was declined because of insufficient funds."


def run(billed_store: BilledStore, *args: str) -> Result:
    settings = billed_store.runtime.settings
    environment = {
        "REBILL_DATABASE_URL": settings.database_url,
        "REBILL_REDIS_URL": settings.redis_url,
    }
    return CliRunner().invoke(main, list(args), env=environment)


def declined(billed_store: BilledStore, code: int) -> int:
    customer, _ = billed_store.add_customer({"is_default": True, "behavior": code})
    billed_store.add_subscription(customer)
    billed_store.tick_and_work()
    return billed_store.cycles()[-1].id


def test_stored_message_has_no_code(billed_store: BilledStore) -> None:
    cycle_id = declined(billed_store, 30106)

    (attempt,) = billed_store.attempts(cycle_id)
    cycle = billed_store.cycle(cycle_id)
    assert attempt.error_code == 30106
    assert attempt.message == DECLINE_TEXT
    assert cycle.last_error_code == 30106
    assert cycle.last_error_message == DECLINE_TEXT


def test_failures_row_shows_code_once(billed_store: BilledStore) -> None:
    cycle_id = declined(billed_store, 30106)

    result = run(billed_store, "failures")

    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if "30106" in line]
    assert row.split()[0] == str(cycle_id)
    assert row.count("30106") == 1
    assert row.endswith(DECLINE_TEXT)


def test_cycles_show_names_code_once(billed_store: BilledStore) -> None:
    cycle_id = declined(billed_store, 30106)

    result = run(billed_store, "cycles", "show", str(cycle_id))

    assert result.exit_code == 0, result.output
    (attempt_line,) = [
        line for line in result.stdout.splitlines() if "attempt 1" in line
    ]
    assert attempt_line.count("30106") == 1
    assert attempt_line.endswith(f": {DECLINE_TEXT}")


def test_store_pause_reason_keeps_code(billed_store: BilledStore) -> None:
    declined(billed_store, 30002)

    reason = billed_store.store().billing_paused_reason

    assert reason is not None
    assert reason.startswith("code 30002: ")
    assert reason.count("30002") == 1


def test_signal_without_code_leads_message(billed_store: BilledStore) -> None:
    customer, _ = billed_store.add_customer({"is_default": True})
    billed_store.add_subscription(customer)
    billed_store.inject("payments", "server_error", status=503)
    billed_store.tick_and_work()

    cycle = billed_store.cycles()[-1]
    (attempt,) = billed_store.attempts(cycle.id)
    assert attempt.error_code is None
    assert attempt.message is not None
    assert not attempt.message.startswith("code ")
    assert ": " in attempt.message
