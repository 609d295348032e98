"""Faults that tests and demos inject into the next requests of an endpoint.

A fault matches one endpoint of one store and applies to the next `count`
requests that reach it after authentication. Kinds:

- "error": respond `status` with `code` in the endpoint's error envelope.
- "slow": sleep `delay` seconds, then handle the request normally.
- "drop_after_charge": handle the payment, then close the connection without
  sending the response (payments only).
- "stall_after_charge": handle the payment, then sleep `delay` seconds before
  sending the response (payments only).
- "rate_limit": 429 with the rate-limit headers; `delay` seconds, when given,
  set the reset time they announce.
- "rate_limit_bare": 429 with an empty body and no rate-limit headers.
- "server_error": `status` 500, 502 or 503 with no error code.

The after-charge kinds act whatever the payment's outcome, so a decline can
lose its response as well as a success.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ApiRejection, Envelope, SetupError, json_value
from sandbox.payments import CODE_STATUS, ERROR_MESSAGES

ENDPOINT_ENVELOPES = {
    "orders": Envelope.V2,
    "methods": Envelope.PAYMENTS,
    "access_tokens": Envelope.PAYMENTS,
    "payments": Envelope.PAYMENTS,
    "transactions": Envelope.V3,
}
ENDPOINTS = tuple(ENDPOINT_ENVELOPES)

IMMEDIATE_KINDS = ("error", "rate_limit", "rate_limit_bare", "server_error")
AFTER_CHARGE_KINDS = ("drop_after_charge", "stall_after_charge")
KINDS = (*IMMEDIATE_KINDS, "slow", *AFTER_CHARGE_KINDS)
SERVER_ERROR_STATUSES = (500, 502, 503)

# Window and quota that rate-limit headers announce, per host.
API_WINDOW_MS = 30_000
PAYMENTS_WINDOW_MS = 4_000
PAYMENTS_QUOTA = 50


@dataclass
class Fault:
    """An injected fault with the number of requests it still applies to."""

    endpoint: str
    kind: str
    code: int | None
    status: int | None
    delay: float | None
    remaining: int
    message: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "code": self.code,
            "status": self.status,
            "delay": self.delay,
            "remaining": self.remaining,
        }


def build_fault(
    endpoint: str,
    kind: str,
    *,
    code: int | None,
    status: int | None,
    delay: float | None,
    count: int,
    message: str | None,
) -> Fault:
    """Validate the settings of a fault and return it; SetupError if invalid."""
    if endpoint not in ENDPOINTS:
        raise SetupError(
            f"invalid endpoint {json_value(endpoint)}; use one of "
            f"{', '.join(ENDPOINTS)}"
        )
    if kind not in KINDS:
        raise SetupError(
            f"invalid fault kind {json_value(kind)}; use one of {', '.join(KINDS)}"
        )
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SetupError(
            f"invalid count {json_value(count)}: use an integer of 1 or more"
        )
    if kind in AFTER_CHARGE_KINDS and endpoint != "payments":
        raise SetupError(f"fault kind {kind} applies to the payments endpoint only")
    check_delay(kind, delay)
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise SetupError(f"invalid code {json_value(code)}: use an integer error code")
    if message is not None and not isinstance(message, str):
        raise SetupError(f"invalid message {json_value(message)}: use a string")
    status = fault_status(kind, code, status)
    return Fault(endpoint, kind, code, status, delay, count, message)


def check_delay(kind: str, delay: float | None) -> None:
    needs_delay = kind in ("slow", "stall_after_charge")
    if delay is None:
        if needs_delay:
            raise SetupError(f"fault kind {kind} needs delay, in seconds")
        return
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise SetupError(
            f"invalid delay {json_value(delay)}: use a number of seconds >= 0"
        )


def fault_status(kind: str, code: int | None, status: int | None) -> int | None:
    """Return the HTTP status a fault responds with, checking the given one."""
    if kind == "server_error":
        status = status or 500
        if status not in SERVER_ERROR_STATUSES:
            raise SetupError(
                f"invalid status {status} for server_error; use 500, 502 or 503"
            )
        return status
    if kind != "error":
        return status
    if status is None and code is None:
        raise SetupError("fault kind error needs a status, a code or both")
    if status is None:
        assert code is not None
        return CODE_STATUS.get(code, 422)
    if (
        isinstance(status, bool)
        or not isinstance(status, int)
        or not 400 <= status <= 599
    ):
        raise SetupError(
            f"invalid status {json_value(status)}: use an HTTP error status 400-599"
        )
    return status


def rate_limit_headers(endpoint: str, quota: int, reset_ms: int) -> dict[str, str]:
    """Return the headers of a 429 that leaves `reset_ms` until the window resets."""
    if endpoint == "payments":
        window_ms, quota = PAYMENTS_WINDOW_MS, PAYMENTS_QUOTA
    else:
        window_ms = API_WINDOW_MS
    return {
        "X-Rate-Limit-Time-Window-Ms": str(window_ms),
        "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
        "X-Rate-Limit-Requests-Quota": str(quota),
        "X-Rate-Limit-Requests-Left": "0",
        "X-Retry-After": str(math.ceil(reset_ms / 1000)),
    }


def fault_rejection(fault: Fault, api_quota: int) -> ApiRejection:
    """Build the rejection of an "error", "rate_limit" or "server_error" fault."""
    envelope = ENDPOINT_ENVELOPES[fault.endpoint]
    if fault.kind == "rate_limit":
        if fault.delay is not None:
            reset_ms = round(fault.delay * 1000)
        elif fault.endpoint == "payments":
            reset_ms = PAYMENTS_WINDOW_MS
        else:
            reset_ms = API_WINDOW_MS
        headers = rate_limit_headers(fault.endpoint, api_quota, reset_ms)
        return ApiRejection(
            429, "Too Many Requests", envelope=envelope, headers=headers
        )
    assert fault.status is not None
    if fault.kind == "server_error":
        message = fault.message or "Internal Server Error"
        return ApiRejection(fault.status, message, envelope=envelope)
    message = fault.message or default_message(fault.code)
    return ApiRejection(fault.status, message, code=fault.code, envelope=envelope)


def default_message(code: int | None) -> str:
    if code is not None and code in ERROR_MESSAGES:
        return ERROR_MESSAGES[code]
    suffix = f" with code {code}" if code is not None else ""
    return f"The sandbox returned an injected error{suffix}."
