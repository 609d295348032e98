"""Unreachable Redis or database: one-line errors naming the setting.

`rebill scheduler --once` and `rebill migrate` exit 1 with one message, and the
running scheduler logs one line per failed tick, without a traceback.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from models import utcnow
from rebill.cli import main
from rebill.runtime import Runtime
from rebill.settings import Settings
from tests.factories import make_store, make_subscription
from tests.processes import role_environment, running, wait_until

pytestmark = pytest.mark.usefixtures("restore_logging")

# The tests assume that nothing listens on port 9 (discard) of this machine.
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"
UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:9/rebill"


def invoke(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def add_due_subscription(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        store = make_store(session)
        make_subscription(
            session, store, next_billing_at=utcnow() - timedelta(minutes=1)
        )
        session.commit()


def test_once_without_redis_is_one_line(runtime: Runtime) -> None:
    add_due_subscription(runtime)

    result = invoke(
        "scheduler", "--once",
        REBILL_DATABASE_URL=runtime.settings.database_url,
        REBILL_REDIS_URL=UNREACHABLE_REDIS,
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = error_lines(result.output)
    assert "REBILL_REDIS_URL" in line
    assert UNREACHABLE_REDIS in line
    assert "Connection refused" in line


def test_migrate_without_postgres_is_one_line() -> None:
    result = invoke("migrate", REBILL_DATABASE_URL=UNREACHABLE_POSTGRES)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = error_lines(result.output)
    assert "REBILL_DATABASE_URL" in line
    assert "127.0.0.1" in line


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql://rebill@127.0.0.1/rebill", "mysql"),
        ("postgresql+psycopg2://postgres@127.0.0.1/rebill", "psycopg2"),
        ("oracle://rebill@127.0.0.1/rebill", "oracle"),
    ],
    ids=["mysql", "psycopg2", "oracle"],
)
def test_migrate_unsupported_database(url: str, named: str) -> None:
    result = invoke("migrate", REBILL_DATABASE_URL=url)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = error_lines(result.output)
    assert "REBILL_DATABASE_URL" in line
    assert named in line
    assert "postgresql+psycopg://" in line


def failed_tick_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "scheduler tick failed" in line]


def test_daemon_logs_one_line_per_failed_tick(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    add_due_subscription(runtime)
    env = role_environment(
        settings,
        REBILL_REDIS_URL=UNREACHABLE_REDIS,
        REBILL_SCHEDULER_INTERVAL="0.1",
        REBILL_LOG_FORMAT="json",
    )
    command = [str(Path(sys.executable).parent / "rebill"), "scheduler"]

    with running(command, env, tmp_path / "scheduler.log") as scheduler:
        wait_until(
            lambda: len(failed_tick_lines(scheduler.output)) >= 3,
            "three failed ticks",
        )
        status = scheduler.terminate()

    assert status == 0, scheduler.output
    assert "Traceback" not in scheduler.output
    records = [json.loads(line) for line in failed_tick_lines(scheduler.output)]
    for number, record in enumerate(records[:3], start=1):
        message = record["message"]
        assert record["level"] == "ERROR"
        assert f"({number} in a row)" in message
        assert "kombu.exceptions.OperationalError" in message
        assert "REBILL_REDIS_URL" in message
        assert "exception" not in record
        assert re.search(r"next tick in 0(\.\d+)? s", message)
