"""The store API host: V2 orders, payment methods, PATs, transactions, customers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from sandbox.errors import ApiRejection, Envelope
from sandbox.fault_hooks import apply_before
from sandbox.orders import Order, render_line, render_order, v2_error
from sandbox.payments import invalid_payment
from sandbox.state import SandboxState

MAX_PAGE_SIZE = 250
DEFAULT_PAGE_SIZE = 50
ORDER_FILTERS = ("customer_id", "status_id", "min_id", "max_id")

# The fault endpoint (see sandbox.faults) of each view that faults apply to.
FAULT_ENDPOINTS = {
    "create_order": "orders",
    "list_orders": "orders",
    "get_order": "orders",
    "update_order": "orders",
    "order_products": "orders",
    "payment_methods": "methods",
    "access_token": "access_tokens",
    "transactions": "transactions",
}

# Builds the rejection for an invalid query parameter in the endpoint's envelope.
ErrorFactory = Callable[[str], ApiRejection]


def create_blueprint(state: SandboxState) -> Blueprint:
    """Build the routes under /stores/{hash}/ that use X-Auth-Token."""
    api = Blueprint("store_api", __name__, url_prefix="/stores/<store_hash>")

    @api.before_request
    def authenticate_and_apply_faults() -> None:
        store_hash = (request.view_args or {}).get("store_hash", "")
        state.authenticate(store_hash, request.headers.get("X-Auth-Token"))
        decision = state.admit_api_request(store_hash)
        g.rate_limit_headers = decision.headers()
        if not decision.allowed:
            raise ApiRejection(
                429,
                "Too Many Requests: the store's API quota for this window is used up.",
                headers=decision.headers(),
            )
        view = (request.endpoint or "").rpartition(".")[2]
        if view in FAULT_ENDPOINTS:
            apply_before(state, store_hash, FAULT_ENDPOINTS[view])

    @api.after_request
    def add_rate_limit_headers(response: Response) -> Response:
        """Send the quota headers on every response of an admitted request."""
        if not g.get("bare_response"):
            for name, value in g.get("rate_limit_headers", {}).items():
                response.headers.setdefault(name, value)
        return response

    @api.post("/v2/orders")
    def create_order(store_hash: str) -> tuple[Response, int]:
        order = state.create_order(
            store_hash, request.get_json(force=True, silent=True)
        )
        return jsonify(render_order(order, v2_base_url(store_hash))), 201

    @api.get("/v2/orders")
    def list_orders(store_hash: str) -> Response | tuple[str, int]:
        filters = parse_order_filters()
        page, limit = parse_paging(v2_query_error)
        orders = state.list_orders(store_hash, filters)[(page - 1) * limit :][:limit]
        if not orders:
            return "", 204
        base = v2_base_url(store_hash)
        return jsonify([render_order(order, base) for order in orders])

    @api.get("/v2/orders/<int:order_id>")
    def get_order(store_hash: str, order_id: int) -> Response:
        order = state.get_order(store_hash, order_id)
        return jsonify(render_order(order, v2_base_url(store_hash)))

    @api.put("/v2/orders/<int:order_id>")
    def update_order(store_hash: str, order_id: int) -> Response:
        body = request.get_json(force=True, silent=True)
        order = state.update_order(store_hash, order_id, body)
        return jsonify(render_order(order, v2_base_url(store_hash)))

    @api.get("/v2/orders/<int:order_id>/products")
    def order_products(store_hash: str, order_id: int) -> Response:
        order: Order = state.get_order(store_hash, order_id)
        return jsonify([render_line(order, line) for line in order.lines])

    @api.get("/v3/payments/methods")
    def payment_methods(store_hash: str) -> Response:
        order_id = request.args.get("order_id", "")
        if not order_id.isdigit():
            raise invalid_payment("The order_id query parameter must be an integer.")
        methods = state.payment_methods(store_hash, int(order_id))
        return jsonify({"data": methods, "meta": {}})

    @api.post("/v3/payments/access_tokens")
    def access_token(store_hash: str) -> tuple[Response, int]:
        body = request.get_json(force=True, silent=True)
        token = state.mint_pat(store_hash, body)
        return jsonify({"data": {"id": token}, "meta": {}}), 201

    @api.get("/v3/orders/<int:order_id>/transactions")
    def transactions(store_hash: str, order_id: int) -> Response | tuple[str, int]:
        found = state.order_transactions(store_hash, order_id)
        page, limit = parse_paging(v3_query_error)
        page_items = found[(page - 1) * limit :][:limit]
        if not page_items:
            return "", 204
        meta = {"pagination": pagination(len(found), len(page_items), page, limit)}
        return jsonify({"data": page_items, "meta": meta})

    @api.get("/v3/customers/<int:customer_id>/stored-instruments")
    def stored_instruments(store_hash: str, customer_id: int) -> Response:
        return jsonify(state.customer_instruments(store_hash, customer_id))

    return api


def v2_base_url(store_hash: str) -> str:
    return f"{request.host_url.rstrip('/')}/stores/{store_hash}/v2"


def v2_query_error(message: str) -> ApiRejection:
    return v2_error(message)


def v3_query_error(message: str) -> ApiRejection:
    return ApiRejection(422, message, envelope=Envelope.V3)


def query_int(name: str, error: ErrorFactory, *, minimum: int = 0) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        raise error(f"The query parameter '{name}' must be an integer >= {minimum}.")
    return int(raw)


def parse_order_filters() -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name in ORDER_FILTERS:
        value = query_int(name, v2_query_error)
        if value is not None:
            filters[name] = value
    if "external_order_id" in request.args:
        filters["external_order_id"] = request.args["external_order_id"]
    return filters


def parse_paging(error: ErrorFactory) -> tuple[int, int]:
    page = query_int("page", error, minimum=1) or 1
    limit = query_int("limit", error, minimum=1) or DEFAULT_PAGE_SIZE
    if limit > MAX_PAGE_SIZE:
        raise error(f"The query parameter 'limit' must be at most {MAX_PAGE_SIZE}.")
    return page, limit


def pagination(total: int, count: int, page: int, limit: int) -> dict[str, Any]:
    total_pages = max(1, -(-total // limit))
    link = f"?page={{}}&limit={limit}"
    return {
        "total": total,
        "count": count,
        "per_page": limit,
        "current_page": page,
        "total_pages": total_pages,
        "links": {
            "previous": link.format(page - 1) if page > 1 else None,
            "current": link.format(page),
            "next": link.format(page + 1) if page < total_pages else None,
        },
    }
