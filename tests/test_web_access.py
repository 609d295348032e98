from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from models import ApiKey, Operator, utcnow
from rebill.cli import main
from rebill.runtime import Runtime
from tests.factories import make_store
from web.api_keys import create_api_key, find_api_key, hash_key, revoke_api_key
from web.operators import add_operator, authenticate


def run_cli(database_url: str, *args: str, **env: str):
    runner = CliRunner()
    return runner.invoke(
        main, list(args), env={"REBILL_DATABASE_URL": database_url, **env}
    )


def test_api_keys_create_prints_key_once(runtime: Runtime, database_url: str) -> None:
    with runtime.sessions() as session:
        make_store(session, "store1")
        session.commit()

    result = run_cli(database_url, "api-keys", "create", "--store", "store1")

    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("rbk_")
    with runtime.sessions() as session:
        stored = session.scalars(sa.select(ApiKey)).one()
        assert stored.key_hash == hash_key(key)
        assert key not in (stored.prefix, stored.key_hash)
        assert key.startswith(stored.prefix + "_")
    listing = run_cli(database_url, "api-keys", "list")
    assert listing.exit_code == 0, listing.output
    assert stored.prefix in listing.output
    assert key not in listing.output


def test_api_keys_create_unknown_store_fails(database_url: str) -> None:
    result = run_cli(database_url, "api-keys", "create", "--store", "nosuch")

    assert result.exit_code == 1
    assert "store not found" in result.output


def test_find_api_key_rejects_revoked_and_wrong(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        make_store(session, "store1")
        api_key, key = create_api_key(session, "store1", utcnow())
        session.commit()

        assert find_api_key(session, key) is not None
        assert find_api_key(session, key + "x") is None
        assert find_api_key(session, "not-a-key") is None

        revoke_api_key(session, api_key.prefix, utcnow())
        session.commit()
        assert find_api_key(session, key) is None


def test_operators_add_hashes_password(runtime: Runtime, database_url: str) -> None:
    password = "correct horse battery"
    result = run_cli(
        database_url, "operators", "add", "alice", REBILL_OPERATOR_PASSWORD=password
    )

    assert result.exit_code == 0, result.output
    with runtime.sessions() as session:
        operator = session.scalars(sa.select(Operator)).one()
        assert operator.username == "alice"
        assert password not in operator.password_hash
        assert authenticate(session, "alice", password, utcnow()) is not None
        assert authenticate(session, "alice", "wrong password!", utcnow()) is None
        assert authenticate(session, "bob", password, utcnow()) is None


def test_operators_add_rejects_short_password(database_url: str) -> None:
    result = run_cli(
        database_url, "operators", "add", "alice", REBILL_OPERATOR_PASSWORD="short"
    )

    assert result.exit_code == 1
    assert "at least 12 characters" in result.output


def test_disabled_operator_cannot_sign_in(runtime: Runtime, database_url: str) -> None:
    with runtime.sessions() as session:
        add_operator(session, "alice", "correct horse battery", utcnow())
        session.commit()

    result = run_cli(database_url, "operators", "disable", "alice")

    assert result.exit_code == 0, result.output
    with runtime.sessions() as session:
        found = authenticate(session, "alice", "correct horse battery", utcnow())
        assert found is None
