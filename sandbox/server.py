"""Run the sandbox over HTTP on werkzeug's threaded server."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.app import create_app
from sandbox.state import SandboxState

logger = logging.getLogger(__name__)

# How often the serving thread checks for stop(); bounds how long stop() waits.
SHUTDOWN_POLL_SECONDS = 0.05


class QuietRequestHandler(WSGIRequestHandler):
    """Request handler without werkzeug's access log.

    The app logs each request itself, with instrument tokens shortened.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class SandboxServer:
    """A sandbox served from a daemon thread, for tests and demos.

    Port 0 picks a free port; `url` contains the chosen port after `start()`.
    """

    def __init__(
        self,
        state: SandboxState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state = state if state is not None else SandboxState()
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox server is not started; call start() first")
        return f"http://{self.host}:{self._server.server_port}"

    @property
    def api_url(self) -> str:
        """Base URL of the store API; paths continue with /stores/{hash}/..."""
        return self.url

    @property
    def payments_url(self) -> str:
        """Base URL of the payments host; paths continue with /stores/{hash}/..."""
        return f"{self.url}/payments-host"

    def start(self) -> SandboxServer:
        """Bind the port and serve in a daemon thread; return once listening."""
        if self._server is not None:
            raise RuntimeError(f"the sandbox server already runs at {self.url}")
        self._server = make_server(
            self.host,
            self.port,
            create_app(self.state),
            threaded=True,
            request_handler=QuietRequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name=f"sandbox-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("sandbox listening at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port; calling it twice is harmless."""
        if self._server is None:
            return
        url = self.url
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None
        logger.info("sandbox at %s stopped", url)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(host: str, port: int) -> None:
    """Serve an empty sandbox in the foreground until interrupted (CLI entry)."""
    server = make_server(
        host,
        port,
        create_app(SandboxState()),
        threaded=True,
        request_handler=QuietRequestHandler,
    )
    url = f"http://{host}:{server.server_port}"
    logger.info("sandbox store API at %s/stores/{store_hash}/", url)
    logger.info("sandbox payments host at %s/payments-host/stores/{store_hash}/", url)
    logger.info("sandbox admin API at %s/_sandbox/", url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("sandbox at %s interrupted, stopping", url)
    finally:
        server.server_close()
