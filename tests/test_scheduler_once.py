"""`rebill scheduler --once` records its tick as the daemon records each tick."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from click.testing import CliRunner, Result

from models import utcnow
from rebill import health
from rebill.cli import main
from rebill.runtime import Runtime
from tests.factories import make_store, make_subscription

pytestmark = pytest.mark.usefixtures("restore_logging")

# The tests assume that nothing listens on port 9 (discard) of this machine.
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"


def invoke(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def add_due_subscription(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        store = make_store(session)
        make_subscription(
            session, store, next_billing_at=utcnow() - timedelta(minutes=1)
        )
        session.commit()


def test_once_records_its_tick(runtime: Runtime) -> None:
    env = {
        "REBILL_DATABASE_URL": runtime.settings.database_url,
        "REBILL_REDIS_URL": runtime.settings.redis_url,
    }

    ticked = invoke("scheduler", "--once", **env)
    healthy = invoke("health", "scheduler", **env)

    assert ticked.exit_code == 0, ticked.output
    client = redis.Redis.from_url(runtime.settings.redis_url)
    try:
        assert health.last_tick(client, health.this_host()) is not None
        assert health.last_tick(client) is not None
    finally:
        client.close()
    assert healthy.exit_code == 0, healthy.output
    assert "ok      scheduler tick: last tick on" in healthy.output


def test_failed_once_records_no_tick(runtime: Runtime) -> None:
    add_due_subscription(runtime)
    env = {
        "REBILL_DATABASE_URL": runtime.settings.database_url,
        "REBILL_REDIS_URL": runtime.settings.redis_url,
    }

    failed = invoke(
        "scheduler", "--once", **{**env, "REBILL_REDIS_URL": UNREACHABLE_REDIS}
    )
    healthy = invoke("health", "scheduler", **env)

    assert failed.exit_code == 1, failed.output
    assert healthy.exit_code == 1, healthy.output
    assert "no tick recorded" in healthy.output
