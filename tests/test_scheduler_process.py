"""A real `rebill scheduler` process: tick record, health and SIGTERM."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from click.testing import CliRunner

from models import BillingCycle, utcnow
from rebill import health
from rebill.cli import main
from rebill.runtime import Runtime
from rebill.settings import Settings
from tests.factories import make_store, make_subscription
from tests.processes import role_environment, running, wait_until

pytestmark = pytest.mark.usefixtures("restore_logging")


def tick_recorded(settings: Settings) -> bool:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return health.last_tick(client, health.this_host()) is not None
    finally:
        client.close()


def test_tick_recency_is_judged_against_now() -> None:
    last = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    assert health.tick_is_recent(last, last + timedelta(seconds=300), 300)
    assert not health.tick_is_recent(last, last + timedelta(seconds=301), 300)
    assert not health.tick_is_recent(None, last, 300)


def test_tick_record_is_per_host_and_global(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    health.record_tick(client, 1_800_000_000.0, host="one")
    health.record_tick(client, 1_800_000_060.0, host="two")
    assert health.last_tick(client, "one") == datetime.fromtimestamp(
        1_800_000_000.0, UTC
    )
    assert health.last_tick(client) == datetime.fromtimestamp(1_800_000_060.0, UTC)
    assert health.last_tick(client, "three") is None
    client.close()


def test_sigterm_stops_the_scheduler_after_its_tick(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.sessions() as session:
        store = make_store(session)
        for customer_id in range(100, 110):
            make_subscription(
                session,
                store,
                customer_id=customer_id,
                next_billing_at=utcnow() - timedelta(minutes=1),
            )
        session.commit()
    env = role_environment(runtime.settings, REBILL_SCHEDULER_INTERVAL="0.2")
    command = [str(Path(sys.executable).parent / "rebill"), "scheduler"]
    for name in ("REBILL_DATABASE_URL", "REBILL_REDIS_URL"):
        monkeypatch.setenv(name, env[name])
    runner = CliRunner()
    with running(command, env, tmp_path / "scheduler.log") as scheduler:
        wait_until(lambda: tick_recorded(runtime.settings), "a recorded tick")
        healthy = runner.invoke(main, ["health", "scheduler"])
        status = scheduler.terminate()
    assert healthy.exit_code == 0, healthy.output
    assert "ok      scheduler tick: last tick on" in healthy.output
    assert status == 0, scheduler.output
    assert "SIGTERM received, stopping after this tick" in scheduler.output
    assert scheduler.output.rstrip().endswith("scheduler stopped")
    with runtime.sessions() as session:
        cycles = session.scalars(sa.select(BillingCycle)).all()
    assert len(cycles) == 10
    assert all(cycle.queued_at is not None for cycle in cycles)


def test_scheduler_health_fails_without_a_tick(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REBILL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REBILL_REDIS_URL", settings.redis_url)
    result = CliRunner().invoke(main, ["health", "scheduler"])
    assert result.exit_code == 1
    assert "ok      database:" in result.output
    assert "ok      redis:" in result.output
    assert (
        f"FAILED  scheduler tick: no tick recorded for host {health.this_host()}"
        in (result.output)
    )


def test_health_fails_when_redis_is_unreachable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REBILL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REBILL_REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("REBILL_HEALTH_TIMEOUT", "1")
    result = CliRunner().invoke(main, ["health", "scheduler"])
    assert result.exit_code == 1
    assert "FAILED  redis: ConnectionError" in result.output
