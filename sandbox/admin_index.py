"""The index of the sandbox's admin API, served at GET /_sandbox/.

Each entry gives an endpoint's method, path, purpose and JSON body, field by
field. A test checks that the index lists every /_sandbox/ route, so a new
route needs an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.faults import ENDPOINTS, KINDS
from sandbox.instruments import DEFAULT_METHOD_BY_KIND, INSTRUMENT_KINDS
from sandbox.store import PLAN_API_QUOTAS, PLANS

PREFIX = "/_sandbox"


def _choices(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f'"{value}"' for value in values)


@dataclass(frozen=True)
class AdminEndpoint:
    """One admin endpoint; `body` maps each JSON field to its meaning, or is None."""

    method: str
    path: str
    description: str
    body: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": PREFIX + self.path,
            "description": self.description,
            "body": self.body,
        }


STORE_BODY = {
    "store_hash": "required string: 1 to 32 lowercase letters or digits",
    "access_token": "required string: the X-Auth-Token the store API accepts",
    "plan": f'one of {_choices(PLANS)}; default "plus"',
    "currency": 'ISO-4217 code of the store; default "USD"',
    "api_quota": "store API requests per 30 s; required for enterprise, default "
    + ", ".join(f"{plan} {quota}" for plan, quota in PLAN_API_QUOTAS.items()),
    "other_apps_share": "fraction of each 30 s window that other apps use, "
    "from 0 to below 1; default 0",
}

INSTRUMENT_BODY = {
    "kind": f'one of {_choices(INSTRUMENT_KINDS)}; default "stored_card"',
    "payment_method_id": "payment method that charges it; default by kind: "
    + ", ".join(f'"{method}"' for method in DEFAULT_METHOD_BY_KIND.values()),
    "brand": 'card brand; default "VISA"',
    "last_4": 'string of four digits; default "4242"',
    "expiry_month": "1 to 12; default 12",
    "expiry_year": "four digits; default 2030",
    "email": "PayPal account email; default customer<customer_id>@example.com",
    "is_default": "true makes it the customer's default of its kind; default false",
    "behavior": 'charge outcome: null succeeds (default), "pending" stays pending, '
    "and a documented error code such as 30106 (a number or a string of digits) "
    "declines with that code",
}

FAULT_BODY = {
    "endpoint": f"required: one of {_choices(ENDPOINTS)}",
    "kind": f"required: one of {_choices(KINDS)}",
    "code": 'BigCommerce error code of an "error" fault',
    "status": 'HTTP status of an "error" or "server_error" fault',
    "delay": 'seconds of a "slow" or "stall_after_charge" fault, or the reset time '
    'of a "rate_limit" fault',
    "count": "number of requests the fault applies to; default 1",
    "message": 'error message of an "error" fault',
}

ENDPOINT_INDEX = (
    AdminEndpoint("GET", "/", "this index of the admin endpoints"),
    AdminEndpoint("POST", "/stores", "add a store", STORE_BODY),
    AdminEndpoint(
        "POST",
        "/stores/{store_hash}/customers",
        "add a customer; adding one that exists changes nothing",
        {"customer_id": "required integer of 1 or more"},
    ),
    AdminEndpoint(
        "POST",
        "/stores/{store_hash}/customers/{customer_id}/instruments",
        "store a payment instrument for a customer; responds with its token",
        INSTRUMENT_BODY,
    ),
    AdminEndpoint(
        "DELETE",
        "/stores/{store_hash}/instruments/{token}",
        "delete a stored instrument, as a shopper does in My Account",
    ),
    AdminEndpoint("GET", "/ledger", "every successful charge, oldest first"),
    AdminEndpoint(
        "GET", "/stores/{store_hash}/ledger", "the store's successful charges"
    ),
    AdminEndpoint("GET", "/stores/{store_hash}/orders", "a summary of each order"),
    AdminEndpoint(
        "GET",
        "/stores/{store_hash}/orders/{order_id}/charges",
        "the number of successful charges of an order",
    ),
    AdminEndpoint(
        "GET",
        "/stores/{store_hash}/pats",
        "the payment access tokens created, without their text",
    ),
    AdminEndpoint(
        "POST",
        "/stores/{store_hash}/faults",
        "make the next requests of an endpoint fail; faults apply in order",
        FAULT_BODY,
    ),
    AdminEndpoint("GET", "/stores/{store_hash}/faults", "the faults that still apply"),
    AdminEndpoint("DELETE", "/stores/{store_hash}/faults", "remove every fault"),
    AdminEndpoint(
        "POST",
        "/stores/{store_hash}/pending/settle",
        "settle pending payments; responds with the settled order ids",
        {
            "order_id": "only this order; default every pending payment",
            "outcome": '"success" (default) or "declined"',
        },
    ),
    AdminEndpoint(
        "GET",
        "/stores/{store_hash}/rate-limits",
        "the requests the store got and the 429 responses it was sent, per host",
    ),
    AdminEndpoint(
        "POST",
        "/stores/{store_hash}/other-apps-share",
        "set the fraction of each store API window that other apps use",
        {"share": "required number from 0 to below 1"},
    ),
    AdminEndpoint(
        "POST",
        "/settings",
        "change settings of the whole sandbox",
        {
            "latency": "seconds added to each store API and payments response",
            "strict_accept": "true: Process Payment rejects any Accept header but "
            "application/vnd.bc.v1+json",
        },
    ),
    AdminEndpoint("GET", "/clock", "the sandbox's current time"),
    AdminEndpoint(
        "POST",
        "/clock",
        "move the sandbox clock forward, or stop and start it",
        {
            "advance_seconds": "seconds to move the clock forward",
            "freeze": "true stops the clock, false lets it run",
        },
    ),
)


def admin_index(base_url: str) -> dict[str, Any]:
    """Return the index for a sandbox served at `base_url` (no trailing slash)."""
    return {
        "store_api": f"{base_url}/stores/{{store_hash}}",
        "payments_host": f"{base_url}/payments-host/stores/{{store_hash}}",
        "endpoints": [endpoint.as_json() for endpoint in ENDPOINT_INDEX],
    }
