"""`rebill subscriptions list`, and the errors of `subscriptions add` and import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result

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


def add_subscription(database_url: str, template: Path, *options: str) -> Result:
    template.write_text(json.dumps(record()["order_template"]))
    base = {
        "--store": "abc123xyz",
        "--customer-id": "42",
        "--cron": "0 9 1 * *",
        "--timezone": "America/Chicago",
        "--template": str(template),
    }
    changes = dict(zip(options[::2], options[1::2], strict=True))
    arguments = [part for item in {**base, **changes}.items() for part in item]
    return run(database_url, "subscriptions", "add", *arguments)


def error_output(result: Result) -> str:
    (start,) = [
        i for i, line in enumerate(result.output.splitlines()) if "Error:" in line
    ]
    return "\n".join(result.output.splitlines()[start:])


def test_add_error_reads_as_one_subscription(with_stores: str, tmp_path: Path) -> None:
    result = add_subscription(with_stores, tmp_path / "t.json", "--cron", "61 * * * *")

    assert result.exit_code == 1, result.output
    message = error_output(result)
    assert message.startswith("Error: subscription not added: --cron: ")
    assert "minute" in message
    assert "record" not in message
    assert "command line" not in message
    assert count(with_stores, Subscription) == 0


def test_add_lists_every_bad_option(with_stores: str, tmp_path: Path) -> None:
    result = add_subscription(
        with_stores, tmp_path / "t.json",
        "--cron", "61 * * * *", "--timezone", "Mars/Base", "--customer-id", "0",
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    lines = error_output(result).splitlines()
    assert lines[0] == "Error: subscription not added, 3 errors:"
    assert lines[1].startswith("  --customer-id: ")
    assert lines[2].startswith("  --cron: ")
    assert lines[3].startswith("  --timezone: ")


def test_add_names_template_field(with_stores: str, tmp_path: Path) -> None:
    template = tmp_path / "t.json"
    body = record()["order_template"]
    body["products"][0]["price_inc_tax"] = "20.001"  # type: ignore[index]
    template.write_text(json.dumps(body))

    result = run(
        with_stores, "subscriptions", "add", "--store", "abc123xyz",
        "--customer-id", "43", "--cron", "0 9 1 * *",
        "--timezone", "America/Chicago", "--template", str(template),
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    message = error_output(result)
    assert message.startswith(
        "Error: subscription not added: --template: products[0].price_inc_tax: "
    )


def test_add_unknown_store_names_option(with_stores: str, tmp_path: Path) -> None:
    result = add_subscription(with_stores, tmp_path / "t.json", "--store", "nosuch1")

    assert result.exit_code == 1, result.output
    message = error_output(result)
    assert message.startswith("Error: subscription not added: --store: ")
    assert "'nosuch1' is not known" in message
    assert "currency" not in message


def test_add_duplicate_reference(with_stores: str, tmp_path: Path) -> None:
    first = add_subscription(with_stores, tmp_path / "t.json", "--reference", "gold")
    second = add_subscription(with_stores, tmp_path / "t.json", "--reference", "gold")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 1, second.output
    message = error_output(second)
    assert message.startswith("Error: subscription not added: --reference: ")
    assert "already has subscription" in message


def test_import_counts_errors_and_records(with_stores: str, tmp_path: Path) -> None:
    path = tmp_path / "subs.jsonl"
    lines = [
        record(42, cron="61 * * * *", timezone="Mars/Base"),
        record(43),
        record(0),
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines))

    result = run(with_stores, "subscriptions", "import", str(path))

    assert result.exit_code == 1, result.output
    assert f"{path}: 3 error(s) in 2 record(s), nothing was imported:" in (
        result.output
    )
    assert count(with_stores, Subscription) == 0
