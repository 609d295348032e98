"""The errors the sandbox raises, under rebill's single base class.

    RebillError
    └── SandboxError              base of every sandbox error
        ├── SetupError            a state method or admin request got a bad value
        └── ApiRejection          the simulated BigCommerce rejects a request;
                                  the HTTP layer turns it into an error response

An ApiRejection carries the HTTP status, the BigCommerce error code (None when
BigCommerce sends none), the message for the response body and, when the endpoint
does not decide it, the envelope to render. Messages never contain a token.
"""

from __future__ import annotations

import json
from enum import Enum

from rebill.errors import RebillError


class Envelope(Enum):
    """The shapes BigCommerce uses for error bodies."""

    V2 = "v2"  # [{"status": 400, "message": "..."}]
    V3 = "v3"  # {"status": 404, "title": "...", "type": "..."}
    PAYMENTS = "payments"  # V3 plus an integer "code"


class SandboxError(RebillError):
    """Base class of the sandbox's errors."""


class SetupError(SandboxError):
    """A state method or an admin request got an unknown or invalid value.

    `http_status` is the status the admin endpoint returns: 404 for an unknown store,
    customer or instrument, 400 for an invalid value.
    """

    def __init__(self, message: str, *, http_status: int = 400) -> None:
        self.http_status = http_status
        super().__init__(message)


class ApiRejection(SandboxError):
    """The simulated BigCommerce rejects a request with `http_status` and `code`."""

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        code: int | None = None,
        envelope: Envelope | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.message = message
        self.envelope = envelope
        self.headers = dict(headers or {})
        suffix = f" (code {code})" if code is not None else ""
        super().__init__(f"HTTP {http_status}{suffix}: {message}")


def json_value(value: object) -> str:
    """Return `value` as JSON writes it (null, true, "text"), for error messages.

    Admin requests send JSON, so their errors quote values in JSON. A value that
    JSON cannot encode, which only a Python caller can pass, is shown by repr().
    """
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
