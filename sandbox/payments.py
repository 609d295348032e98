"""Process Payment: request checks and the error codes of the Payments API.

The functions here are pure: they check headers and bodies and build the
rejections. SandboxState applies them to its stores under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.errors import ApiRejection, Envelope
from sandbox.instruments import INSTRUMENT_KINDS

PAYMENTS_MEDIA_TYPE = "application/vnd.bc.v1+json"
LENIENT_MEDIA_TYPES = frozenset({PAYMENTS_MEDIA_TYPE, "application/json"})

# The Payments API's documented error codes, each with a message in the
# sandbox's own words.
ERROR_MESSAGES = {
    10000: "The payment could not be processed because of a connection problem; "
    "try again later.",
    10001: "The payment request contains missing or invalid data.",
    30000: "The store has no payment configuration for this method.",
    30001: "The store's payment configuration was rejected by the gateway.",
    30002: "The vaulting service for stored instruments is not available.",
    30003: "The order could not be found.",
    30004: "The order's line items do not add up to the amount of the payment "
    "access token; create a new token or a new order.",
    30050: "The payment instrument could not be saved.",
    30051: "The stored payment instrument could not be found; use another one.",
    30100: "The payment access token could not be created.",
    30101: "Order is not in a correct status.",
    30102: "The card details could not be verified.",
    30103: "The card has expired; use a valid card.",
    30104: "The card could not be charged; the customer should contact the issuer.",
    30105: "This is a duplicate transaction; do not try to pay again.",
    30106: "The payment was declined because of insufficient funds.",
    30107: "The authorization for this transaction was revoked.",
}
DOCUMENTED_CODES = frozenset(ERROR_MESSAGES)

# The HTTP status returned with each code. Declines and invalid data are 422;
# a connection problem at the gateway is 502.
CODE_STATUS = {10000: 502, 30003: 404, 30100: 500, 30101: 409}


def payments_error(code: int, detail: str | None = None) -> ApiRejection:
    """Build the rejection for a documented code, with an optional detail."""
    message = ERROR_MESSAGES[code] if detail is None else detail
    return ApiRejection(
        CODE_STATUS.get(code, 422), message, code=code, envelope=Envelope.PAYMENTS
    )


def invalid_payment(detail: str, status: int = 400) -> ApiRejection:
    return ApiRejection(status, detail, code=10001, envelope=Envelope.PAYMENTS)


def parse_authorization(value: str | None) -> str:
    """Return the JWT of an `Authorization: PAT <jwt>` header; 401/10001 otherwise.

    Exactly "PAT", one space and a token without spaces is accepted. "Bearer",
    other spellings and a missing header are rejected.
    """
    if value is None:
        raise invalid_payment(
            "The Authorization header is missing; send 'Authorization: PAT <token>'.",
            401,
        )
    scheme, separator, token = value.partition(" ")
    if scheme != "PAT" or separator != " " or not token or " " in token:
        raise invalid_payment(
            "The Authorization header must be 'PAT', one space and the payment "
            "access token.",
            401,
        )
    return token


def check_accept(value: str | None, *, strict: bool) -> None:
    """Raise 406 unless the Accept header lists the payments media type.

    In lenient mode application/json is accepted as well.
    """
    allowed = {PAYMENTS_MEDIA_TYPE} if strict else LENIENT_MEDIA_TYPES
    offered = {part.split(";")[0].strip().lower() for part in (value or "").split(",")}
    if offered & allowed:
        return
    raise ApiRejection(
        406,
        f"The Accept header must be {PAYMENTS_MEDIA_TYPE}.",
        envelope=Envelope.PAYMENTS,
    )


@dataclass(frozen=True)
class RawCard:
    """A card sent in full with the payment; only its last four digits are kept."""

    last_4: str
    expiry_month: int
    expiry_year: int


@dataclass(frozen=True)
class PaymentRequest:
    """A parsed Process Payment body."""

    payment_method_id: str
    instrument_type: str
    token: str | None = None
    card: RawCard | None = None


def parse_payment_body(body: object) -> PaymentRequest:
    """Parse `{"payment": {"instrument": {...}, "payment_method_id": ...}}`.

    Malformed bodies get 400/10001. A raw card whose expiry year has fewer than
    four digits gets 422/10001.
    """
    payment = body.get("payment") if isinstance(body, dict) else None
    if not isinstance(payment, dict):
        raise invalid_payment("The body must be a JSON object with a 'payment' object.")
    method_id = payment.get("payment_method_id")
    if not isinstance(method_id, str) or not method_id:
        raise invalid_payment("payment.payment_method_id must be a non-empty string.")
    instrument = payment.get("instrument")
    if not isinstance(instrument, dict):
        raise invalid_payment("payment.instrument must be an object.")
    kind = instrument.get("type")
    if kind in INSTRUMENT_KINDS:
        return PaymentRequest(method_id, kind, token=parse_token(instrument))
    if kind == "card":
        return PaymentRequest(method_id, kind, card=parse_card(instrument))
    raise invalid_payment(
        f"payment.instrument.type {kind!r} is not supported by the sandbox; use "
        f"card or one of {', '.join(INSTRUMENT_KINDS)}.",
        422 if isinstance(kind, str) else 400,
    )


def parse_token(instrument: dict[str, Any]) -> str:
    token = instrument.get("token")
    if not isinstance(token, str) or len(token) != 64:
        raise invalid_payment("payment.instrument.token must be 64 characters long.")
    return token


def parse_card(instrument: dict[str, Any]) -> RawCard:
    number = instrument.get("number")
    month = instrument.get("expiry_month")
    year = instrument.get("expiry_year")
    digits = number.replace(" ", "") if isinstance(number, str) else ""
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise invalid_payment("payment.instrument.number must be 12 to 19 digits.")
    for name, value in (("expiry_month", month), ("expiry_year", year)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid_payment(f"payment.instrument.{name} must be an integer.")
    assert isinstance(month, int) and isinstance(year, int)
    if not 1 <= month <= 12:
        raise invalid_payment("payment.instrument.expiry_month must be 1 to 12.", 422)
    if year < 100:
        raise invalid_payment(
            "payment.instrument.expiry_year must have four digits, for example 2030.",
            422,
        )
    return RawCard(digits[-4:], month, year)
