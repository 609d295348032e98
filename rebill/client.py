"""HTTP client for the BigCommerce endpoints that a renewal uses.

One client serves one store. Every call has a connect and a read timeout, logs
one INFO line without secrets, and raises a subclass of BigCommerceError on
failure (see rebill.errors). The client makes no retry decisions. It only
distinguishes a request that certainly never left (RequestNotSent) from one that
may have been processed (OutcomeUnknown) and from an error response (ApiError).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from rebill.errors import (
    ApiError,
    BigCommerceError,
    OutcomeUnknown,
    RateLimited,
    RequestNotSent,
)
from rebill.logs import ids_prefix

logger = logging.getLogger(__name__)

PAYMENTS_ACCEPT = "application/vnd.bc.v1+json"
USER_AGENT = "rebill/0.1"


@dataclass(frozen=True)
class StoreCredentials:
    store_hash: str
    access_token: str = field(repr=False)
    api_url: str
    payments_url: str


@dataclass(frozen=True)
class StoredInstrument:
    """A stored card, PayPal account or bank account offered for an order."""

    payment_method_id: str
    type: str
    token: str = field(repr=False)
    is_default: bool = False
    brand: str | None = None
    last_4: str | None = None
    expiry_month: int | None = None
    expiry_year: int | None = None
    email: str | None = None
    verification_value_required: bool = False

    def describe(self) -> str:
        """Return a label safe to log and show, e.g. 'VISA ending 4242'."""
        if self.type == "stored_card":
            return f"{self.brand or 'card'} ending {self.last_4 or '????'}"
        if self.type == "stored_paypal_account":
            return "PayPal account"
        return self.type.replace("_", " ")


@dataclass(frozen=True)
class PaymentResult:
    transaction_id: str
    status: str  # "success" or "pending"
    transaction_type: str  # "purchase" or "authorization"


@dataclass(frozen=True)
class ResponseInfo:
    """Status and headers of one response, as a rate limiter reads them."""

    host: str  # "api" or "payments"
    status: int
    headers: Mapping[str, str]


class RequestGate(Protocol):
    """Admits requests under a store's rate limits (see rebill.limiter)."""

    def before(self, host: str) -> None:
        """Wait briefly or raise RateLimitWait; `host` is "api" or "payments"."""

    def after(self, info: ResponseInfo) -> None:
        """Record a response's status and rate-limit headers."""


class BigCommerceClient:
    """Calls BigCommerce on behalf of one store."""

    def __init__(
        self,
        credentials: StoreCredentials,
        *,
        connect_timeout: float,
        read_timeout: float,
        session: requests.Session | None = None,
        gate: RequestGate | None = None,
    ) -> None:
        self.credentials = credentials
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or requests.Session()
        self.gate = gate

    @property
    def store_hash(self) -> str:
        return self.credentials.store_hash

    def create_order(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a V2 order and return it."""
        return self._api("POST", "/v2/orders", "create order", json=body)

    def get_order(self, order_id: int) -> dict[str, Any]:
        return self._api(
            "GET", f"/v2/orders/{order_id}", "get order", order_id=order_id
        )

    def find_orders(self, external_order_id: str) -> list[dict[str, Any]]:
        """Return the orders tagged with `external_order_id` (an empty list if none)."""
        answer = self._api(
            "GET",
            "/v2/orders",
            "find orders",
            params={"external_order_id": external_order_id},
        )
        return list(answer or [])

    def check_access(self) -> None:
        """Make one cheap authenticated read (the newest order) to test the token.

        Raises ApiError with HTTP 401 or 403 when the token or its scopes are
        wrong; the orders scope is one every renewal needs.
        """
        self._api("GET", "/v2/orders", "check access", params={"limit": 1})

    def get_payment_methods(self, order_id: int) -> list[StoredInstrument]:
        """Return every stored instrument offered for the order, in API order."""
        answer = self._api(
            "GET",
            "/v3/payments/methods",
            "get payment methods",
            order_id=order_id,
            params={"order_id": order_id},
        )
        return parse_payment_methods(answer)

    def create_payment_access_token(self, order_id: int) -> str:
        """Mint a single-use PAT for a recurring charge of the order."""
        answer = self._api(
            "POST",
            "/v3/payments/access_tokens",
            "create payment access token",
            order_id=order_id,
            json={"order": {"id": order_id, "is_recurring": True}},
        )
        try:
            return str(answer["data"]["id"])
        except (KeyError, TypeError):
            raise ApiError(
                "response has no data.id",
                **self._context("create payment access token", order_id),
            ) from None

    def process_payment(
        self, order_id: int, pat: str, instrument: StoredInstrument
    ) -> PaymentResult:
        """Charge the instrument for the order with a PAT minted for it."""
        body = {
            "payment": {
                "instrument": {"type": instrument.type, "token": instrument.token},
                "payment_method_id": instrument.payment_method_id,
            }
        }
        headers = {
            "Authorization": payment_authorization(pat),
            "Accept": PAYMENTS_ACCEPT,
            "Content-Type": "application/json",
        }
        answer = self._send(
            "POST",
            f"{self.credentials.payments_url}/stores/{self.store_hash}/payments",
            "process payment",
            host="payments",
            order_id=order_id,
            headers=headers,
            json=body,
        )
        return parse_payment_result(answer, self._context("process payment", order_id))

    def get_transactions(self, order_id: int) -> list[dict[str, Any]]:
        """Return the order's V3 transactions (an empty list if none)."""
        answer = self._api(
            "GET",
            f"/v3/orders/{order_id}/transactions",
            "get transactions",
            order_id=order_id,
        )
        if not answer:
            return []
        return list(answer.get("data") or [])

    def _api(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        order_id: int | None = None,
        **kwargs: Any,
    ) -> Any:
        headers = {
            "X-Auth-Token": self.credentials.access_token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        url = f"{self.credentials.api_url}/stores/{self.store_hash}{path}"
        return self._send(
            method,
            url,
            endpoint,
            host="api",
            order_id=order_id,
            headers=headers,
            **kwargs,
        )

    def _send(
        self,
        method: str,
        url: str,
        endpoint: str,
        *,
        host: str,
        order_id: int | None,
        headers: dict[str, str],
        **kwargs: Any,
    ) -> Any:
        context = self._context(endpoint, order_id)
        headers["User-Agent"] = USER_AGENT
        if self.gate is not None:
            self.gate.before(host)
        started = time.monotonic()
        prefix = ids_prefix(store=self.store_hash, order=order_id)
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            error = transport_error(exc, context)
            logger.warning(
                "%s: %s %s -> %s in %.3f s",
                prefix,
                method,
                endpoint,
                type(error).__name__,
                time.monotonic() - started,
            )
            raise error from None
        logger.info(
            "%s: %s %s -> %d in %.3f s",
            prefix,
            method,
            endpoint,
            response.status_code,
            time.monotonic() - started,
        )
        if self.gate is not None:
            self.gate.after(ResponseInfo(host, response.status_code, response.headers))
        return read_answer(response, context)

    def _context(self, endpoint: str, order_id: int | None) -> dict[str, Any]:
        return {
            "endpoint": endpoint,
            "store_hash": self.store_hash,
            "order_id": order_id,
        }


def payment_authorization(pat: str) -> str:
    """Build the payments host's Authorization header: 'PAT', one space, the token."""
    return f"PAT {pat}"


def transport_error(
    exc: requests.RequestException, context: dict[str, Any]
) -> BigCommerceError:
    """Classify a failure without an HTTP response by whether the request left."""
    if isinstance(exc, requests.ConnectTimeout) or _is_connect_failure(exc):
        return RequestNotSent(
            f"could not connect ({type(exc).__name__}); nothing was sent", **context
        )
    if isinstance(exc, requests.ReadTimeout):
        return OutcomeUnknown(
            "no answer before the read timeout; the request may have been processed",
            **context,
        )
    return OutcomeUnknown(
        f"connection failed after sending ({type(exc).__name__}); the request may "
        "have been processed",
        **context,
    )


def _is_connect_failure(exc: requests.RequestException) -> bool:
    if not isinstance(exc, requests.ConnectionError) or not exc.args:
        return False
    reason = exc.args[0]
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | NameResolutionError)


def read_answer(response: requests.Response, context: dict[str, Any]) -> Any:
    """Return the decoded JSON of a 2xx response, or raise the matching error."""
    status = response.status_code
    if status == 429:
        raise RateLimited(
            "rate limited",
            retry_after=retry_after_seconds(response.headers),
            http_status=429,
            **context,
        )
    if status >= 400:
        code, title = error_details(response)
        raise ApiError(title, http_status=status, code=code, **context)
    if status == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ApiError(
            f"HTTP {status} response is not JSON", http_status=status, **context
        ) from None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Return the longer of the two waits a 429 may carry, or None if neither."""
    waits = []
    reset_ms = headers.get("X-Rate-Limit-Time-Reset-Ms")
    retry_after = headers.get("X-Retry-After")
    try:
        if reset_ms is not None:
            waits.append(float(reset_ms) / 1000)
        if retry_after is not None:
            waits.append(float(retry_after))
    except ValueError:
        return None
    return max(waits) if waits else None


def error_details(response: requests.Response) -> tuple[int | None, str]:
    """Return (BigCommerce error code, message) from any of its error envelopes."""
    try:
        body = response.json()
    except ValueError:
        return None, f"HTTP {response.status_code} with no JSON body"
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return None, str(body[0].get("message") or body[0])
    if not isinstance(body, dict):
        return None, f"HTTP {response.status_code}"
    code = body.get("code")
    title = body.get("title") or body.get("message") or f"HTTP {response.status_code}"
    detail = body.get("detail")
    message = f"{title}: {detail}" if detail else str(title)
    return (code if isinstance(code, int) else None), message


def parse_payment_methods(answer: Any) -> list[StoredInstrument]:
    instruments = []
    for method in (answer or {}).get("data") or []:
        required = any(
            item.get("verification_value_required")
            for item in method.get("supported_instruments") or []
            if item.get("instrument_type") == "STORED_CARD"
        )
        for stored in method.get("stored_instruments") or []:
            instruments.append(
                StoredInstrument(
                    payment_method_id=str(method.get("id")),
                    type=str(stored.get("type")),
                    token=str(stored.get("token")),
                    is_default=bool(stored.get("is_default")),
                    brand=stored.get("brand"),
                    last_4=stored.get("last_4"),
                    expiry_month=stored.get("expiry_month"),
                    expiry_year=stored.get("expiry_year"),
                    email=stored.get("email"),
                    verification_value_required=required,
                )
            )
    return instruments


def parse_payment_result(answer: Any, context: dict[str, Any]) -> PaymentResult:
    data = (answer or {}).get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or "id" not in data:
        raise OutcomeUnknown(
            "2xx response without data.id; the payment may have been taken", **context
        )
    return PaymentResult(
        transaction_id=str(data["id"]),
        status=str(data.get("status") or ""),
        transaction_type=str(data.get("transaction_type") or ""),
    )
