"""The sandbox's Flask application: store API, payments host and admin API.

URL layout, with `{url}` the server's base URL:

- `{url}/stores/{hash}/v2/...` and `/v3/...`: the store API (X-Auth-Token).
- `{url}/payments-host/stores/{hash}/payments`: Process Payment (PAT).
- `{url}/_sandbox/...`: seeding and inspection for tests and demos.
"""

from __future__ import annotations

import logging
import re
import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox import admin, payments_host, store_api
from sandbox.errors import ApiRejection, SetupError
from sandbox.responses import (
    envelope_for_path,
    error_body,
    render_rejection,
    render_setup_error,
)
from sandbox.state import SandboxState

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/_sandbox/"
# The host name that 429 counters use for each blueprint.
RATE_LIMITED_HOSTS = {"store_api": "api", "payments_host": "payments"}

# Instrument tokens are 64 hex characters; logs keep only their last four.
TOKEN_PATTERN = re.compile(r"[0-9a-f]{60}([0-9a-f]{4})")


def create_app(state: SandboxState) -> Flask:
    """Build the WSGI app that serves `state`."""
    app = Flask("sandbox")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["sandbox_state"] = state
    app.register_blueprint(store_api.create_blueprint(state))
    app.register_blueprint(payments_host.create_blueprint(state))
    app.register_blueprint(admin.create_blueprint(state))
    app.register_error_handler(ApiRejection, render_rejection)
    app.register_error_handler(SetupError, render_setup_error)
    app.register_error_handler(HTTPException, render_http_exception)
    app.before_request(start_timer)
    app.after_request(log_request)

    @app.before_request
    def add_latency() -> None:
        if state.latency and not request.path.startswith("/_sandbox/"):
            time.sleep(state.latency)

    @app.after_request
    def count_rate_limited(response: Response) -> Response:
        host = RATE_LIMITED_HOSTS.get(request.blueprint or "")
        store_hash = (request.view_args or {}).get("store_hash")
        if response.status_code == 429 and host and store_hash:
            state.record_rate_limited(store_hash, host)
        return response

    return app


def render_http_exception(error: HTTPException) -> Response:
    if error.response is not None:
        # A response built on purpose, such as an injected bare 429.
        return error.response  # type: ignore[return-value]
    status = error.code or 500
    if request.path.startswith(ADMIN_PREFIX):
        return admin_http_error(error, status)
    message = error.description or error.name
    response = jsonify(
        error_body(envelope_for_path(request.path), status, message, None)
    )
    response.status_code = status
    return response


def admin_http_error(error: HTTPException, status: int) -> Response:
    """Respond to an unknown admin path or method as the admin endpoints do."""
    message = f"{request.method} {request.path}: {error.name.lower()}"
    if status in (404, 405):
        message += f"; GET {ADMIN_PREFIX} lists the admin endpoints"
    response = jsonify({"error": message})
    response.status_code = status
    allowed = getattr(error, "valid_methods", None)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def start_timer() -> None:
    g.started = time.monotonic()


def redact_path(path: str) -> str:
    return TOKEN_PATTERN.sub(r"...\1", path)


def log_request(response: Response) -> Response:
    """Log one INFO line per handled request, with tokens cut to four characters."""
    elapsed_ms = (time.monotonic() - g.get("started", time.monotonic())) * 1000
    logger.info(
        "%s %s -> %s (%.1f ms)",
        request.method,
        redact_path(request.path),
        response.status_code,
        elapsed_ms,
    )
    return response
