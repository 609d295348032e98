"""`rebill subscriptions list`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from models import Subscription
from rebill.db import create_engine
from tests.test_cli import TOKEN, count, record, run

INSTRUMENT_TOKEN = "7e" * 32


@pytest.fixture
def with_stores(database_url: str) -> str:
    for store_hash in ("abc123xyz", "other42"):
        result = run(
            database_url, "stores", "add", "--hash", store_hash,
            "--timezone", "America/Chicago", REBILL_STORE_TOKEN=TOKEN,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    return database_url


@pytest.fixture
def imported(with_stores: str, tmp_path: Path) -> str:
    records = [
        record(42, instrument_token=INSTRUMENT_TOKEN),
        record(43, reference=None),
        record(44, store="other42", first_billing_at="2027-01-01T09:00:00-06:00"),
    ]
    path = tmp_path / "subs.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in records))
    result = run(with_stores, "subscriptions", "import", str(path))
    assert result.exit_code == 0, result.output
    return with_stores


def set_status(database_url: str, customer_id: int, status: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.update(Subscription)
            .where(Subscription.customer_id == customer_id)
            .values(status=status)
        )
    engine.dispose()


def table_lines(output: str) -> list[str]:
    """Return the table from its header line on, without the log lines before it."""
    lines = output.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("id  "))
    return lines[start:]


def data_lines(output: str) -> list[list[str]]:
    """Split the table rows after the header, without the count line."""
    return [line.split() for line in table_lines(output)[1:-1]]


def test_list_shows_every_column(imported: str) -> None:
    result = run(imported, "subscriptions", "list")

    assert result.exit_code == 0, result.output
    header = table_lines(result.output)[0]
    for column in ("id", "store", "reference", "customer", "cron", "time zone"):
        assert column in header
    for column in ("amount", "status", "next billing"):
        assert column in header
    rows = data_lines(result.output)
    assert len(rows) == 3
    first = rows[0]
    assert first[1] == "abc123xyz"
    assert first[2] == "sub-42"
    assert first[3] == "42"
    assert " ".join(first[4:9]) == "0 9 1 * *"
    assert first[9] == "America/Chicago"
    assert first[11] == "USD"
    assert first[12] == "active"
    assert rows[1][2] == "-"
    assert rows[2][-1] == "2027-01-01T15:00:00+00:00"
    assert result.output.strip().endswith("3 subscription(s)")


def test_list_never_prints_instrument_token(imported: str) -> None:
    result = run(imported, "subscriptions", "list")

    assert result.exit_code == 0, result.output
    assert INSTRUMENT_TOKEN not in result.output
    assert INSTRUMENT_TOKEN[:16] not in result.output


def test_list_filters_by_store(imported: str) -> None:
    result = run(imported, "subscriptions", "list", "--store", "other42")

    assert result.exit_code == 0, result.output
    rows = data_lines(result.output)
    assert [row[3] for row in rows] == ["44"]


def test_list_filters_by_status(imported: str) -> None:
    set_status(imported, 43, "paused")

    result = run(imported, "subscriptions", "list", "--status", "paused")

    assert result.exit_code == 0, result.output
    rows = data_lines(result.output)
    assert [row[3] for row in rows] == ["43"]
    assert rows[0][12] == "paused"


def test_list_combines_filters(imported: str) -> None:
    set_status(imported, 44, "paused")

    result = run(
        imported, "subscriptions", "list", "--store", "abc123xyz", "--status", "paused"
    )

    assert result.exit_code == 0, result.output
    assert data_lines(result.output) == []
    assert "0 subscription(s)" in result.output


def test_list_unknown_store(imported: str) -> None:
    result = run(imported, "subscriptions", "list", "--store", "nosuchstore")

    assert result.exit_code == 1, result.output
    assert "store nosuchstore not found" in result.output


def test_list_rejects_unknown_status(imported: str) -> None:
    result = run(imported, "subscriptions", "list", "--status", "gone")

    assert result.exit_code == 2, result.output
    assert "--status" in result.output


def test_group_help_lists_list_command(database_url: str) -> None:
    result = run(database_url, "subscriptions", "--help")

    assert result.exit_code == 0, result.output
    assert "list" in result.output.split("Commands:")[1]
    assert count(database_url, Subscription) == 0
