"""A local HTTP endpoint that accepts Sentry envelopes, for tests.

sentry-sdk sends to it through its real HTTP transport when the DSN names it,
from the test process or from a role process the test starts. It keeps every
envelope decompressed, so a test can read the events and check-ins and scan
the raw bytes for secrets.
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from sentry_sdk.envelope import Envelope

PUBLIC_KEY = "0123456789abcdef0123456789abcdef"


class SentryServer:
    """Receives envelopes at /api/<project>/envelope/ on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: list[bytes] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sentry-server", daemon=True
        )

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self._server.server_port}/1"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.keep(body, self.headers.get("Content-Encoding", ""))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def keep(self, body: bytes, encoding: str) -> None:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        with self._lock:
            self._bodies.append(body)

    def raw(self) -> str:
        """Return every envelope received so far, as text."""
        with self._lock:
            return b"\n".join(self._bodies).decode(errors="replace")

    def items(self, item_type: str) -> list[dict[str, Any]]:
        """Return the payloads of every received item of one type."""
        with self._lock:
            bodies = list(self._bodies)
        payloads = []
        for body in bodies:
            for item in Envelope.deserialize(body).items:
                if item.type == item_type:
                    payloads.append(json.loads(item.payload.get_bytes()))
        return payloads

    def events(self) -> list[dict[str, Any]]:
        return self.items("event")

    def check_ins(self) -> list[dict[str, Any]]:
        return self.items("check_in")

    def __enter__(self) -> SentryServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def event_text(event: dict[str, Any]) -> str:
    """Return an event's message, log message or exception value."""
    logentry = event.get("logentry") or {}
    message = logentry.get("formatted") or logentry.get("message")
    if message:
        return str(message)
    if event.get("message"):
        return str(event["message"])
    values = (event.get("exception") or {}).get("values") or []
    return " ".join(str(value.get("value")) for value in values)
