"""`rebill stores add` option checks and `rebill stores update`."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import Session

from models import AuditEntry, Store
from rebill.cli import main
from rebill.db import create_engine
from tests.test_cli import TOKEN, count, run
from tests.test_encryption import raw_tokens

NEW_TOKEN = "cli-test-token-rotated-77c1"


@pytest.fixture
def with_store(database_url: str) -> str:
    result = run(
        database_url, "stores", "add", "--hash", "abc123xyz", REBILL_STORE_TOKEN=TOKEN
    )
    assert result.exit_code == 0, result.output
    return database_url


def load_store(database_url: str, store_hash: str = "abc123xyz") -> Store:
    """Load a store; its access_token is decrypted with the tests' key."""
    engine = create_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        store = session.scalars(
            sa.select(Store).where(Store.store_hash == store_hash)
        ).one()
    engine.dispose()
    return store


def audit_entries(database_url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(AuditEntry.action, AuditEntry.actor, AuditEntry.detail)
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--api-url", "notaurl"),
        ("--api-url", "ftp://api.example.com"),
        ("--api-url", "https://"),
        ("--payments-url", "payments.example.com/x"),
        ("--payments-url", "http://bad host.example.com"),
    ],
    ids=["no-scheme", "ftp", "no-host", "payments-no-scheme", "space-in-host"],
)
def test_add_rejects_invalid_url(database_url: str, option: str, value: str) -> None:
    result = run(
        database_url, "stores", "add", "--hash", "abc123xyz", option, value,
        REBILL_STORE_TOKEN=TOKEN,
    )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert option in result.output
    assert value in result.output
    assert count(database_url, Store) == 0


@pytest.mark.parametrize(
    "store_hash",
    ["bad hash!", "abc-123", "a" * 65, "abc\x00"],
    ids=["space", "dash", "too-long", "nul"],
)
def test_add_rejects_invalid_hash(database_url: str, store_hash: str) -> None:
    result = run(
        database_url, "stores", "add", "--hash", store_hash, REBILL_STORE_TOKEN=TOKEN
    )

    assert result.exit_code == 2, result.output
    assert "--hash" in result.output
    assert count(database_url, Store) == 0


def test_add_rejects_control_character_in_name(database_url: str) -> None:
    result = run(
        database_url, "stores", "add", "--hash", "abc123xyz", "--name", "Shop\x1b",
        REBILL_STORE_TOKEN=TOKEN,
    )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert "--name" in result.output
    assert count(database_url, Store) == 0


def test_add_accepts_sandbox_urls(database_url: str) -> None:
    result = run(
        database_url, "stores", "add", "--hash", "abc123xyz",
        "--api-url", "http://127.0.0.1:8800",
        "--payments-url", "http://127.0.0.1:8800/payments-host/",
        REBILL_STORE_TOKEN=TOKEN,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    store = load_store(database_url)
    assert store.api_url == "http://127.0.0.1:8800"
    assert store.payments_url == "http://127.0.0.1:8800/payments-host"


def test_add_rejects_invalid_default_url(database_url: str) -> None:
    result = run(
        database_url, "stores", "add", "--hash", "abc123xyz",
        REBILL_STORE_TOKEN=TOKEN, REBILL_BIGCOMMERCE_API_URL="api.bigcommerce.com",
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    assert "REBILL_BIGCOMMERCE_API_URL" in result.output
    assert count(database_url, Store) == 0


def test_update_changes_given_fields(with_store: str) -> None:
    result = run(
        with_store, "stores", "update", "--hash", "abc123xyz",
        "--api-url", "http://127.0.0.1:8800/",
        "--payments-url", "http://127.0.0.1:8800/payments-host",
        "--name", "Bread Club", "--timezone", "Europe/Paris", "--currency", "EUR",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "store abc123xyz updated" in result.output
    store = load_store(with_store)
    assert store.api_url == "http://127.0.0.1:8800"
    assert store.payments_url == "http://127.0.0.1:8800/payments-host"
    assert store.name == "Bread Club"
    assert store.timezone == "Europe/Paris"
    assert store.currency == "EUR"
    assert store.plan == "plus"


def test_update_reads_token_from_env(with_store: str) -> None:
    result = run(
        with_store, "stores", "update", "--hash", "abc123xyz", "--token-from-env",
        REBILL_STORE_TOKEN=NEW_TOKEN,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert NEW_TOKEN not in result.output
    assert NEW_TOKEN not in raw_tokens(with_store)["abc123xyz"]
    assert load_store(with_store).access_token == NEW_TOKEN


def test_update_prompts_for_token(with_store: str) -> None:
    result = CliRunner().invoke(
        main,
        ["stores", "update", "--hash", "abc123xyz", "--token-from-env"],
        env={"REBILL_DATABASE_URL": with_store, "REBILL_STORE_TOKEN": None},
        input=f"{NEW_TOKEN}\n",
    )

    assert result.exit_code == 0, result.output
    assert "access token" in result.output
    assert NEW_TOKEN not in result.output
    assert load_store(with_store).access_token == NEW_TOKEN


def test_update_plan_sets_its_quota(with_store: str) -> None:
    result = run(with_store, "stores", "update", "--hash", "abc123xyz", "--plan", "pro")

    assert result.exit_code == 0, result.output
    store = load_store(with_store)
    assert store.plan == "pro"
    assert store.api_quota == 450


def test_update_to_enterprise_needs_quota(with_store: str) -> None:
    result = run(
        with_store, "stores", "update", "--hash", "abc123xyz", "--plan", "enterprise"
    )

    assert result.exit_code == 2, result.output
    assert "--api-quota" in result.output
    assert load_store(with_store).plan == "plus"


def test_update_enterprise_with_quota(with_store: str) -> None:
    result = run(
        with_store, "stores", "update", "--hash", "abc123xyz",
        "--plan", "enterprise", "--api-quota", "3000",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    store = load_store(with_store)
    assert store.plan == "enterprise"
    assert store.api_quota == 3000


def test_update_rejects_invalid_url(with_store: str) -> None:
    result = run(
        with_store, "stores", "update", "--hash", "abc123xyz", "--api-url", "notaurl"
    )

    assert result.exit_code == 2, result.output
    assert "--api-url" in result.output
    assert load_store(with_store).api_url != "notaurl"


def test_update_without_changes_is_rejected(with_store: str) -> None:
    result = run(with_store, "stores", "update", "--hash", "abc123xyz")

    assert result.exit_code == 2, result.output
    assert "nothing to change" in result.output


def test_update_unknown_store(with_store: str) -> None:
    result = run(with_store, "stores", "update", "--hash", "nosuchstore", "--name", "x")

    assert result.exit_code == 1, result.output
    assert "nosuchstore" in result.output
    assert "not found" in result.output


def test_update_is_audited_without_token(with_store: str) -> None:
    result = run(
        with_store, "stores", "update", "--hash", "abc123xyz",
        "--token-from-env", "--name", "Bread Club",
        REBILL_STORE_TOKEN=NEW_TOKEN,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    entries = audit_entries(with_store)
    assert len(entries) == 1
    action, actor, detail = entries[0]
    assert action == "store.update"
    assert actor.startswith("cli ")
    assert "access_token" in detail
    assert "name" in detail
    assert NEW_TOKEN not in detail
