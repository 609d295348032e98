"""Admin endpoints under /_sandbox/ that seed and inspect the state over HTTP.

They mirror SandboxState's methods, so a process that has only the sandbox URL
(a Celery worker, a browser, a demo script) can set up stores and count
charges. GET /_sandbox/ lists them (sandbox.admin_index). Errors respond
`{"error": "<message>"}` with status 400, 404 or 409, and quote values as JSON.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.admin_index import admin_index
from sandbox.errors import SetupError, json_value
from sandbox.state import SandboxState

FAULT_OPTIONS = ("code", "status", "delay", "count", "message")
SETTLE_OPTIONS = ("order_id", "outcome")
INSTRUMENT_OPTIONS = (
    "kind",
    "payment_method_id",
    "brand",
    "last_4",
    "expiry_month",
    "expiry_year",
    "email",
    "is_default",
    "behavior",
)


def json_object() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise SetupError("the request body must be a JSON object")
    return body


def required(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise SetupError(f'missing field "{name}" in the request body')
    return body[name]


def options(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise SetupError(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(names)}"
        )
    return {name: body[name] for name in names if name in body}


def create_blueprint(state: SandboxState) -> Blueprint:
    """Build the /_sandbox/ routes for `state`."""
    admin = Blueprint("sandbox_admin", __name__, url_prefix="/_sandbox")

    @admin.get("/")
    def index() -> Response:
        return jsonify(admin_index(request.host_url.rstrip("/")))

    @admin.post("/stores")
    def add_store() -> tuple[Response, int]:
        body = json_object()
        store_hash = required(body, "store_hash")
        extra = options(
            {k: v for k, v in body.items() if k not in ("store_hash", "access_token")},
            ("plan", "currency", "api_quota", "other_apps_share"),
        )
        state.add_store(store_hash, required(body, "access_token"), **extra)
        return jsonify({"store_hash": store_hash}), 201

    @admin.post("/stores/<store_hash>/customers")
    def add_customer(store_hash: str) -> tuple[Response, int]:
        customer_id = required(json_object(), "customer_id")
        state.add_customer(store_hash, customer_id)
        return jsonify({"customer_id": customer_id}), 201

    @admin.post("/stores/<store_hash>/customers/<int:customer_id>/instruments")
    def add_instrument(store_hash: str, customer_id: int) -> tuple[Response, int]:
        settings = options(json_object(), INSTRUMENT_OPTIONS)
        token = state.add_instrument(store_hash, customer_id, **settings)
        return jsonify({"token": token}), 201

    @admin.delete("/stores/<store_hash>/instruments/<token>")
    def remove_instrument(store_hash: str, token: str) -> tuple[str, int]:
        state.remove_instrument(store_hash, token)
        return "", 204

    @admin.get("/ledger")
    def whole_ledger() -> Response:
        return jsonify({"data": state.ledger()})

    @admin.get("/stores/<store_hash>/ledger")
    def store_ledger(store_hash: str) -> Response:
        return jsonify({"data": state.ledger(store_hash)})

    @admin.get("/stores/<store_hash>/orders")
    def orders(store_hash: str) -> Response:
        return jsonify({"data": state.orders(store_hash)})

    @admin.get("/stores/<store_hash>/orders/<int:order_id>/charges")
    def charges(store_hash: str, order_id: int) -> Response:
        count = state.charges_for_order(store_hash, order_id)
        return jsonify({"order_id": order_id, "charges": count})

    @admin.get("/stores/<store_hash>/pats")
    def pats(store_hash: str) -> Response:
        return jsonify({"data": state.pats(store_hash)})

    @admin.post("/stores/<store_hash>/faults")
    def inject_fault(store_hash: str) -> tuple[Response, int]:
        body = json_object()
        endpoint = required(body, "endpoint")
        kind = required(body, "kind")
        rest = {k: v for k, v in body.items() if k not in ("endpoint", "kind")}
        state.inject_fault(store_hash, endpoint, kind, **options(rest, FAULT_OPTIONS))
        return jsonify({"data": state.faults(store_hash)}), 201

    @admin.get("/stores/<store_hash>/faults")
    def list_faults(store_hash: str) -> Response:
        return jsonify({"data": state.faults(store_hash)})

    @admin.delete("/stores/<store_hash>/faults")
    def clear_faults(store_hash: str) -> tuple[str, int]:
        state.clear_faults(store_hash)
        return "", 204

    @admin.post("/stores/<store_hash>/pending/settle")
    def settle_pending(store_hash: str) -> Response:
        settings = options(json_object(), SETTLE_OPTIONS)
        order_ids = state.settle_pending(store_hash, **settings)
        return jsonify({"settled_order_ids": order_ids})

    @admin.get("/stores/<store_hash>/rate-limits")
    def rate_limits(store_hash: str) -> Response:
        return jsonify(
            {
                "rate_limited": state.rate_limited_counts(store_hash),
                "requests": state.request_counts(store_hash),
            }
        )

    @admin.post("/stores/<store_hash>/other-apps-share")
    def other_apps_share(store_hash: str) -> Response:
        share = required(json_object(), "share")
        state.set_other_apps_share(store_hash, share)
        return jsonify({"other_apps_share": share})

    @admin.post("/settings")
    def settings() -> Response:
        state.configure(**options(json_object(), ("latency", "strict_accept")))
        return jsonify({"latency": state.latency, "strict_accept": state.strict_accept})

    @admin.get("/clock")
    def clock() -> Response:
        return jsonify({"now": state.now().isoformat()})

    @admin.post("/clock")
    def change_clock() -> Response:
        """Take {"advance_seconds": N} and/or {"freeze": true|false}."""
        body = options(json_object(), ("advance_seconds", "freeze"))
        if not body:
            raise SetupError("send advance_seconds, freeze or both")
        frozen = body.get("freeze")
        if frozen is not None:
            if not isinstance(frozen, bool):
                raise SetupError(
                    f"invalid freeze {json_value(frozen)}: use true or false"
                )
            state.freeze_clock(frozen)
        seconds = body.get("advance_seconds")
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise SetupError(
                    f"invalid advance_seconds {json_value(seconds)}: use a number of "
                    "seconds"
                )
            state.advance_clock(seconds)
        return jsonify({"now": state.now().isoformat()})

    return admin
