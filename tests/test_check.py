"""`rebill check` against a real database, Redis and sandbox."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from rebill.cli import main
from rebill.runtime import Runtime
from sandbox.server import SandboxServer
from tests.factories import make_store
from tests.fixtures.runtime import TEST_SECRET_KEY
from tests.fixtures.sandbox import SeededStore

pytestmark = pytest.mark.usefixtures("restore_logging")


def add_store(
    runtime: Runtime, sandbox: SandboxServer, store_hash: str, token: str
) -> None:
    with runtime.sessions() as session:
        make_store(
            session,
            store_hash,
            access_token=token,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
        )
        session.commit()


def run_check(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.setenv("REBILL_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("REBILL_REDIS_URL", runtime.settings.redis_url)
    monkeypatch.setenv("REBILL_SENTRY_DSN", "https://publickey77@sentry.example/3")
    return CliRunner().invoke(main, ["check"])


def test_check_passes_with_working_store(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_store(runtime, sandbox, seeded_store.store_hash, seeded_store.access_token)
    result = run_check(runtime, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "REBILL_SECRET_KEY                ********" in result.output
    assert "REBILL_SENTRY_DSN                ********" in result.output
    assert "ok      database:" in result.output
    assert "ok      redis:" in result.output
    assert "ok      database schema: at revision" in result.output
    assert "ok      secret key: 1 key(s); 1 store token(s) decrypt" in result.output
    assert f"ok      store {seeded_store.store_hash} (id 1):" in result.output
    for secret in (TEST_SECRET_KEY, "publickey77", seeded_store.access_token):
        assert secret not in result.output


def test_check_fails_on_rejected_token(
    runtime: Runtime,
    sandbox: SandboxServer,
    seeded_store: SeededStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_store(runtime, sandbox, seeded_store.store_hash, "a-token-the-store-rejects")
    result = run_check(runtime, monkeypatch)
    assert result.exit_code == 1
    assert f"FAILED  store {seeded_store.store_hash} (id 1): ApiError:" in (
        result.output
    )
    assert "HTTP 401" in result.output
    assert "a-token-the-store-rejects" not in result.output


def test_check_stops_before_stores_on_old_schema(
    empty_database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rebill.migrations import upgrade

    upgrade(empty_database_url, "0001")
    monkeypatch.setenv("REBILL_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("REBILL_REDIS_URL", redis_url)
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1
    assert "FAILED  database schema: ConfigurationError" in result.output
    assert "run `rebill migrate`" in result.output
    assert "secret key" not in result.output


def test_check_names_an_invalid_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REBILL_SCHEDULER_INTERVAL", "often")
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1
    assert "REBILL_SCHEDULER_INTERVAL='often' is invalid" in result.output
