"""The rebill command, run in-process with click's runner or as a real process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from models import Store, Subscription
from rebill.cli import main
from rebill.db import create_engine
from tests.factories import order_template

TOKEN = "cli-test-token-93ab"


def run(database_url: str, *args: str, **env: str) -> Result:
    environment = {"REBILL_DATABASE_URL": database_url, **env}
    return CliRunner().invoke(main, list(args), env=environment)


def count(database_url: str, model: type) -> int:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        total = connection.scalar(sa.select(sa.func.count()).select_from(model))
    engine.dispose()
    return int(total or 0)


@pytest.fixture
def with_store(database_url: str) -> str:
    result = run(
        database_url,
        "stores", "add", "--hash", "abc123xyz", "--timezone", "America/Chicago",
        REBILL_STORE_TOKEN=TOKEN,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return database_url


def record(customer_id: int = 42, **changes: object) -> dict[str, object]:
    template = order_template(customer_id)
    del template["shipping_cost_inc_tax"], template["shipping_cost_ex_tax"]
    base: dict[str, object] = {
        "store": "abc123xyz",
        "customer_id": customer_id,
        "cron": "0 9 1 * *",
        "timezone": "America/Chicago",
        "order_template": template,
        "reference": f"sub-{customer_id}",
    }
    base.update(changes)
    return base


def test_migrate_creates_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = run(url, "migrate")
    assert result.exit_code == 0, result.output
    assert count(url, Store) == 0


def test_store_add_and_list_hide_token(with_store: str) -> None:
    result = run(with_store, "stores", "list")
    assert result.exit_code == 0
    assert "abc123xyz" in result.output
    assert "America/Chicago" in result.output
    assert TOKEN not in result.output


def test_store_add_rejects_unknown_timezone(database_url: str) -> None:
    result = run(
        database_url, "stores", "add", "--hash", "x1", "--timezone", "Mars/Base",
        REBILL_STORE_TOKEN=TOKEN,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--timezone" in result.output
    assert "Mars/Base" in result.output
    assert count(database_url, Store) == 0


def test_store_add_twice_is_rejected(with_store: str) -> None:
    result = run(
        with_store, "stores", "add", "--hash", "abc123xyz", REBILL_STORE_TOKEN=TOKEN
    )
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_import_json_lines(with_store: str, tmp_path: Path) -> None:
    path = tmp_path / "subs.jsonl"
    path.write_text("\n".join(json.dumps(record(n)) for n in (42, 43, 44)))
    result = run(with_store, "subscriptions", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "3 subscription(s) imported" in result.output
    assert count(with_store, Subscription) == 3


def test_import_json_array(with_store: str, tmp_path: Path) -> None:
    path = tmp_path / "subs.json"
    path.write_text(json.dumps([record(42), record(43)]))
    result = run(with_store, "subscriptions", "import", str(path))
    assert result.exit_code == 0, result.output
    assert count(with_store, Subscription) == 2


@pytest.mark.parametrize(
    ("changes", "field", "hint"),
    [
        ({"cron": "61 * * * *"}, "cron", "minute"),
        ({"timezone": "Europe/Atlantis"}, "timezone", "Europe/Atlantis"),
        ({"customer_id": 0}, "customer_id", "guest"),
        ({"store": "nosuchstore"}, "store", "not known"),
    ],
    ids=["cron", "timezone", "guest", "store"],
)
def test_import_with_bad_record_writes_nothing(
    with_store: str, tmp_path: Path, changes: dict, field: str, hint: str
) -> None:
    path = tmp_path / "subs.jsonl"
    bad = record(43)
    bad.update(changes)
    lines = [record(42), bad, record(44)]
    path.write_text("\n".join(json.dumps(line) for line in lines))
    result = run(with_store, "subscriptions", "import", str(path))
    assert result.exit_code == 1
    assert "line 2" in result.output
    assert field in result.output
    assert hint in result.output
    assert count(with_store, Subscription) == 0


def test_import_bad_price_names_the_field(with_store: str, tmp_path: Path) -> None:
    bad = record(42)
    bad["order_template"]["products"][0]["price_inc_tax"] = "20.001"  # type: ignore[index]
    path = tmp_path / "subs.json"
    path.write_text(json.dumps([bad]))
    result = run(with_store, "subscriptions", "import", str(path))
    assert result.exit_code == 1
    assert "record 1" in result.output
    assert "products[0].price_inc_tax" in result.output
    assert count(with_store, Subscription) == 0


def test_subscription_add_from_options(with_store: str, tmp_path: Path) -> None:
    template = tmp_path / "box.json"
    template.write_text(json.dumps(record()["order_template"]))
    result = run(
        with_store, "subscriptions", "add", "--store", "abc123xyz",
        "--customer-id", "42", "--cron", "0 9 1 * *",
        "--timezone", "America/Chicago", "--template", str(template),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.search(r"subscription \d+ added", result.output)
    assert count(with_store, Subscription) == 1


def test_invalid_setting_names_variable(database_url: str) -> None:
    result = run(database_url, "stores", "list", REBILL_HTTP_READ_TIMEOUT="soon")
    assert result.exit_code == 1
    assert "REBILL_HTTP_READ_TIMEOUT" in result.output
    assert "'soon'" in result.output


def test_scheduler_once_queues_due_renewals(
    with_store: str, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "subs.json"
    due = record(42, first_billing_at="2026-01-01T09:00:00+00:00")
    path.write_text(json.dumps([due]))
    assert run(with_store, "subscriptions", "import", str(path)).exit_code == 0
    result = run(with_store, "scheduler", "--once", REBILL_REDIS_URL=redis_url)
    assert result.exit_code == 0, result.output
    assert "1 cycle(s) opened, 1 renewal(s) queued" in result.output


def test_demo_renews_subscriptions(tmp_path: Path, redis_url: str) -> None:
    env = {**os.environ, "REBILL_REDIS_URL": redis_url}
    completed = subprocess.run(
        [sys.executable, "-m", "rebill", "demo", "--subscriptions", "50",
         "--workdir", str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert "50 renewal(s)" in output
    # Customers 25 and 50 hold a card declined for insufficient funds, so their
    # renewals wait for a dunning retry; customer 40 holds only an expired card,
    # so that renewal waits for a new instrument.
    assert re.search(r"paid:\s+47\b", output)
    assert re.search(r"retry_scheduled:\s+2\b", output)
    assert re.search(r"awaiting_instrument:\s+1\b", output)
    assert "2 x code 30106: The payment was declined because of" in output
    assert "code 30106: code 30106" not in output
    assert "orders charged twice: 0" in output
    assert "charges in the sandbox ledger: 47 " in output


def test_demo_refuses_foreign_workdir(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    result = CliRunner().invoke(main, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 1
    assert "was not made by rebill demo" in result.output
    assert precious.read_text() == "keep me"
