from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from models import Store
from rebill.cli import main
from rebill.db import create_engine
from rebill.encryption import (
    DecryptionFailed,
    Keyring,
    generate_key,
    install_keyring,
    looks_encrypted,
    rotate_tokens,
    stored_tokens,
)
from rebill.errors import ConfigurationError
from rebill.migrations import upgrade
from rebill.runtime import Runtime
from rebill.settings import Settings
from rebill.startup import check_ready
from tests.factories import make_store
from tests.fixtures.runtime import TEST_SECRET_KEY

TOKEN = "store-api-token-for-tests-0001"

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture(autouse=True)
def restore_keyring() -> Iterator[None]:
    """Put the test keyring back after a test that installs another one."""
    yield
    install_keyring(Keyring.from_setting(TEST_SECRET_KEY))


def raw_tokens(url: str) -> dict[str, str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        tokens = {token.store_hash: token.value for token in stored_tokens(connection)}
    engine.dispose()
    return tokens


def add_plaintext_store(url: str, store_hash: str, token: str) -> None:
    """Insert a store row as revision 0001 stored it, with a plaintext token."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO stores (store_hash, name, access_token, api_url, "
                "payments_url, plan, api_quota, timezone, currency, retry_policy, "
                "billing_paused, created_at) VALUES (:hash, '', :token, 'http://a', "
                "'http://p', 'plus', 150, 'UTC', 'USD', '{}', false, "
                "'2026-12-04 00:00:00')"
            ),
            {"hash": store_hash, "token": token},
        )
    engine.dispose()


def test_token_is_stored_encrypted_and_loaded_plain(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        make_store(session, access_token=TOKEN)
        session.commit()
    stored = raw_tokens(runtime.settings.database_url)["abc123xyz"]
    assert looks_encrypted(stored)
    assert TOKEN not in stored
    with runtime.sessions() as session:
        store = session.scalars(sa.select(Store)).one()
        assert store.access_token == TOKEN


def test_migration_encrypts_existing_tokens(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0001")
    add_plaintext_store(empty_database_url, "old1", TOKEN)
    upgrade(empty_database_url)
    stored = raw_tokens(empty_database_url)["old1"]
    assert looks_encrypted(stored)
    assert Keyring.from_setting(TEST_SECRET_KEY).decrypt(stored) == TOKEN


def test_migration_downgrade_decrypts(empty_database_url: str) -> None:
    from alembic import command

    from rebill.migrations import alembic_config

    upgrade(empty_database_url, "0001")
    add_plaintext_store(empty_database_url, "old1", TOKEN)
    upgrade(empty_database_url, "encrypt_store_tokens")
    command.downgrade(alembic_config(empty_database_url), "0001")
    assert raw_tokens(empty_database_url)["old1"] == TOKEN


def test_migration_without_key_changes_nothing(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0001")
    add_plaintext_store(empty_database_url, "old1", TOKEN)
    install_keyring(None)
    with pytest.raises(ConfigurationError, match="REBILL_SECRET_KEY is not set"):
        upgrade(empty_database_url)
    assert raw_tokens(empty_database_url)["old1"] == TOKEN


def runtime_with_key(settings: Settings, secret_key: str) -> Runtime:
    return Runtime.from_settings(replace(settings, secret_key=secret_key))


def test_rotation_moves_every_token_to_the_new_key(settings: Settings) -> None:
    old_key, new_key = TEST_SECRET_KEY, generate_key()
    old = Runtime.from_settings(settings)
    with old.sessions() as session:
        make_store(session, "store1", access_token=TOKEN)
        make_store(session, "store2", access_token=TOKEN + "-2")
        session.commit()
    old.close()
    both = runtime_with_key(settings, f"{new_key},{old_key}")
    keyring = Keyring.from_setting(both.settings.secret_key)
    with both.engine.begin() as connection:
        assert rotate_tokens(connection, keyring) == 2
    both.close()
    new_only = Keyring.from_setting(new_key)
    stored = raw_tokens(settings.database_url)
    assert new_only.decrypt(stored["store1"]) == TOKEN
    assert new_only.decrypt(stored["store2"]) == TOKEN + "-2"


def test_rotation_is_all_or_nothing(settings: Settings) -> None:
    stranger = generate_key()
    runtime = Runtime.from_settings(settings)
    with runtime.sessions() as session:
        make_store(session, "store1", access_token=TOKEN)
        session.commit()
    runtime.close()
    install_keyring(Keyring.from_setting(stranger))
    other = Runtime.from_settings(replace(settings, secret_key=stranger))
    with other.sessions() as session:
        make_store(session, "store2", access_token=TOKEN)
        session.commit()
    other.close()
    before = raw_tokens(settings.database_url)
    keyring = Keyring.from_setting(f"{generate_key()},{TEST_SECRET_KEY}")
    engine = create_engine(settings.database_url)
    with pytest.raises(DecryptionFailed, match="store store2"):
        with engine.begin() as connection:
            rotate_tokens(connection, keyring)
    engine.dispose()
    assert raw_tokens(settings.database_url) == before


def test_keys_commands_rotate_through_the_cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = Runtime.from_settings(settings)
    with runtime.sessions() as session:
        make_store(session, access_token=TOKEN)
        session.commit()
    runtime.close()
    runner = CliRunner()
    generated = runner.invoke(main, ["keys", "generate"])
    assert generated.exit_code == 0, generated.output
    new_key = generated.stdout.strip()
    Keyring.from_setting(new_key)
    monkeypatch.setenv("REBILL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REBILL_SECRET_KEY", f"{new_key},{TEST_SECRET_KEY}")
    rotated = runner.invoke(main, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert "1 store token(s) re-encrypted" in rotated.output
    stored = raw_tokens(settings.database_url)["abc123xyz"]
    assert Keyring.from_setting(new_key).decrypt(stored) == TOKEN


def test_start_up_stops_on_wrong_key(settings: Settings) -> None:
    runtime = Runtime.from_settings(settings)
    with runtime.sessions() as session:
        make_store(session, access_token=TOKEN)
        session.commit()
    runtime.close()
    wrong = runtime_with_key(settings, generate_key())
    with pytest.raises(DecryptionFailed) as raised:
        check_ready(wrong)
    wrong.close()
    assert "store abc123xyz (id 1)" in str(raised.value)
    assert "REBILL_SECRET_KEY" in str(raised.value)


def test_start_up_stops_on_missing_key(settings: Settings) -> None:
    runtime = runtime_with_key(settings, "")
    with pytest.raises(ConfigurationError, match="REBILL_SECRET_KEY is not set"):
        check_ready(runtime)
    runtime.close()


def test_start_up_stops_on_old_schema(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0001")
    settings = replace(
        Settings.from_env({}),
        database_url=empty_database_url,
        secret_key=TEST_SECRET_KEY,
    )
    runtime = Runtime.from_settings(settings)
    with pytest.raises(ConfigurationError, match="run `rebill migrate`") as raised:
        check_ready(runtime)
    runtime.close()
    assert "revision 0001" in str(raised.value)
