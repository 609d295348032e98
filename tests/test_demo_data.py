"""`rebill demo-data` seeds a sandbox over HTTP and the database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from models import BillingCycle, CycleState, Store, Subscription, utcnow
from rebill.cli import main
from rebill.demo import STORE_HASH
from rebill.runtime import Runtime
from rebill.settings import Settings
from sandbox.server import SandboxServer
from scheduler.tick import tick
from worker.renewal import renew

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_demo_data_seeds_sandbox_and_database(
    runtime: Runtime, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REBILL_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("REBILL_REDIS_URL", runtime.settings.redis_url)
    runner = CliRunner()
    arguments = ["demo-data", "--sandbox-url", sandbox.url, "--subscriptions", "3"]
    first = runner.invoke(main, arguments)
    second = runner.invoke(main, arguments)
    assert first.exit_code == 0, first.output
    assert "3 demo subscription(s) added" in first.output
    assert second.exit_code == 0, second.output
    assert "nothing added" in second.output
    with runtime.sessions() as session:
        store = session.scalars(sa.select(Store)).one()
        count = session.scalar(sa.select(sa.func.count()).select_from(Subscription))
    assert store.store_hash == STORE_HASH
    assert store.api_url == sandbox.url
    assert count == 3
    (cycle_id, *_) = tick(runtime, utcnow(), lambda _cycle_id: None).opened
    assert renew(cycle_id, runtime) == CycleState.PAID
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        assert cycle is not None
        assert cycle.order_id is not None
    assert sandbox.state.charges_for_order(STORE_HASH, cycle.order_id) == 1


def test_demo_data_reports_unreachable_sandbox(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REBILL_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(
        main, ["demo-data", "--sandbox-url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "cannot seed the sandbox at http://127.0.0.1:9" in result.output
