"""API key authentication and the request helpers of the merchant API."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from flask import g, request
from werkzeug.exceptions import HTTPException

from models import ApiKey
from rebill.errors import InvalidInput, RebillError
from rebill.validation import reject_control_characters
from web.api import api
from web.api.errors import ApiProblem, handle_http_error, handle_rebill_error
from web.api_keys import find_api_key
from web.app import db, now

logger = logging.getLogger(__name__)

# Largest JSON body of a single-record request; imports stream and have none.
MAX_JSON_BODY_BYTES = 1_048_576
# last_used_at is written at most this often per key, to spare the database.
LAST_USED_RESOLUTION = timedelta(minutes=1)
PUBLIC_ENDPOINTS = frozenset({"api.openapi_document"})


@api.before_request
def authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiProblem(
            401, "missing API key: send the header 'Authorization: Bearer <key>'"
        )
    api_key = find_api_key(db(), presented.strip())
    if api_key is None:
        logger.warning(
            "api %s %s: rejected an unknown or revoked key",
            request.method,
            request.path,
        )
        raise ApiProblem(401, "invalid or revoked API key")
    _touch(api_key)
    g.api_key = api_key


def _touch(api_key: ApiKey) -> None:
    moment = now()
    last = api_key.last_used_at
    if last is None or moment - last >= LAST_USED_RESOLUTION:
        api_key.last_used_at = moment
        db().commit()


def current_key() -> ApiKey:
    return g.api_key


def actor() -> str:
    """Name the caller in audit entries, by the key's non-secret prefix."""
    return f"api key {current_key().prefix}"


def json_body() -> dict[str, Any]:
    """Parse the request's JSON object, with numbers that have a fraction as Decimal."""
    if not request.is_json:
        raise ApiProblem(
            415, "expected a JSON body with Content-Type: application/json"
        )
    length = request.content_length
    if length is not None and length > MAX_JSON_BODY_BYTES:
        raise ApiProblem(413, f"body larger than {MAX_JSON_BODY_BYTES} bytes")
    raw = request.stream.read(MAX_JSON_BODY_BYTES + 1)
    if len(raw) > MAX_JSON_BODY_BYTES:
        raise ApiProblem(413, f"body larger than {MAX_JSON_BODY_BYTES} bytes")
    try:
        value = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiProblem(400, f"body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ApiProblem(400, "body must be a JSON object")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def int_arg(name: str, default: int, *, minimum: int, maximum: int) -> int:
    """Read an integer query parameter; raise a 422 ApiProblem if it is invalid."""
    from rebill.errors import InvalidInput

    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise ApiProblem(
            422,
            "invalid query parameter",
            [
                InvalidInput(
                    "query",
                    name,
                    f"invalid value {raw!r}: use a whole number from {minimum} to "
                    f"{maximum}",
                )
            ],
        )
    return value


def text_arg(name: str) -> str | None:
    """Return a text query parameter, or None when it is absent.

    A control character in it raises a 422 ApiProblem naming the parameter.
    """
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return reject_control_characters(raw, record="query", field=name)
    except InvalidInput as error:
        raise ApiProblem(422, "invalid query parameter", [error]) from None


@api.errorhandler(RebillError)
def _rebill_error(error: RebillError):  # type: ignore[no-untyped-def]
    db().rollback()
    return handle_rebill_error(error)


@api.errorhandler(HTTPException)
def _http_error(error: HTTPException):  # type: ignore[no-untyped-def]
    db().rollback()
    return handle_http_error(error)
