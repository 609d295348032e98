"""Error bodies in BigCommerce's three envelopes, as Flask responses."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from sandbox.errors import ApiRejection, Envelope, SetupError

STATUS_CODES_URL = (
    "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"
)


def envelope_for_path(path: str) -> Envelope:
    """Return the envelope BigCommerce uses for errors of the endpoint at `path`."""
    if path.startswith("/payments-host/") or "/v3/payments/" in path:
        return Envelope.PAYMENTS
    if "/v2/" in path:
        return Envelope.V2
    return Envelope.V3


def error_body(envelope: Envelope, status: int, message: str, code: int | None) -> Any:
    """Build an error body: a V2 array, or a V3 object with `code` for payments."""
    if envelope is Envelope.V2:
        return [{"status": status, "message": message}]
    body: dict[str, object] = {
        "status": status,
        "title": message,
        "type": STATUS_CODES_URL,
    }
    if envelope is Envelope.PAYMENTS and code is not None:
        body["code"] = code
    return body


def render_rejection(error: ApiRejection) -> Response:
    envelope = error.envelope or envelope_for_path(request.path)
    body = error_body(envelope, error.http_status, error.message, error.code)
    response = jsonify(body)
    response.status_code = error.http_status
    response.headers.update(error.headers)
    return response


def render_setup_error(error: SetupError) -> Response:
    response = jsonify({"error": str(error)})
    response.status_code = error.http_status
    return response
