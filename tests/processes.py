"""Start rebill's daemons as real child processes for tests.

Each process gets the test's database, Redis and secret key through REBILL_*
variables, the way production roles get them, and writes its output to a file
the test can read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rebill.settings import Settings

# Generous limits for waits in tests: reached only when something is broken.
WAIT_SECONDS = 60.0
STOP_SECONDS = 90.0


def role_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a role process running with the test's settings."""
    return {
        **os.environ,
        "REBILL_DATABASE_URL": settings.database_url,
        "REBILL_REDIS_URL": settings.redis_url,
        "REBILL_SECRET_KEY": settings.secret_key,
        "REBILL_HTTP_READ_TIMEOUT": str(settings.http_read_timeout),
        **extra,
    }


@dataclass
class RoleProcess:
    """A running role, its node name (workers) and its output file."""

    process: subprocess.Popen[bytes]
    output_path: Path
    node: str = ""

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def terminate(self) -> int:
        """Send SIGTERM and return the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_SECONDS)


@contextmanager
def running(
    command: list[str], env: Mapping[str, str], output_path: Path, node: str = ""
) -> Iterator[RoleProcess]:
    """Run `command` for the block; kill it afterwards if it still runs."""
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            command, env=dict(env), stdout=output, stderr=subprocess.STDOUT
        )
    role = RoleProcess(process, output_path, node)
    try:
        yield role
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def worker_command(node: str, concurrency: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "--pool", "threads", "--concurrency", str(concurrency),
        "--hostname", node,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


@contextmanager
def celery_worker(
    settings: Settings, tmp_path: Path, **extra: str
) -> Iterator[RoleProcess]:
    """Run `celery -A worker worker` with the test's settings."""
    node = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = role_environment(settings, **extra)
    with running(worker_command(node), env, tmp_path / "worker.log", node) as role:
        yield role


def wait_until(
    condition: Callable[[], object], what: str, timeout: float = WAIT_SECONDS
) -> None:
    """Poll `condition` until it is true; fail the test naming `what` if it never is."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.05)
