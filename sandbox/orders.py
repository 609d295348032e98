"""V2 orders: validation of POST and PUT bodies, totals, and the V2 rendering.

Totals come only from what the client sent: line prices, shipping, handling and
discount_amount. The sandbox applies no promotion, coupon or automatic tax, and
when a line or a cost gives only one of its ex-tax and inc-tax prices, the other
is copied from it, so a missing tax shows up in the totals.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

from sandbox.errors import ApiRejection, Envelope
from sandbox.money import format_money, parse_money

ORDER_STATUSES = {
    0: "Incomplete",
    1: "Pending",
    2: "Shipped",
    3: "Partially Shipped",
    4: "Refunded",
    5: "Cancelled",
    6: "Declined",
    7: "Awaiting Payment",
    8: "Awaiting Pickup",
    9: "Awaiting Shipment",
    10: "Completed",
    11: "Awaiting Fulfillment",
    12: "Manual Verification Required",
    13: "Disputed",
    14: "Partially Refunded",
}

INCOMPLETE = 0
PENDING = 1
AWAITING_PAYMENT = 7
AWAITING_FULFILLMENT = 11

# Fields the V2 API computes itself; a client that sends one gets a 400.
READ_ONLY_FIELDS = frozenset(
    {
        "id",
        "status",
        "order_source",
        "payment_status",
        "payment_provider_id",
        "currency_id",
        "currency_code",
        "currency_exchange_rate",
        "default_currency_id",
        "subtotal_tax",
        "total_tax",
        "shipping_cost_tax",
        "handling_cost_tax",
        "wrapping_cost_tax",
        "coupon_discount",
        "store_credit_amount",
        "gift_certificate_amount",
        "refunded_amount",
        "shipping_address_count",
        "items_total",
        "items_shipped",
        "is_deleted",
        "coupons",
        "date_modified",
        "date_shipped",
        "external_id",
        "store_default_currency_code",
        "store_default_to_transactional_exchange_rate",
    }
)

# Total overrides exist in the real API; the sandbox computes totals instead.
UNSUPPORTED_FIELDS = frozenset(
    {"subtotal_ex_tax", "subtotal_inc_tax", "total_ex_tax", "total_inc_tax"}
)

TEXT_FIELDS = ("external_source", "staff_notes", "customer_message", "customer_locale")

ZERO = Decimal(0)


@dataclass
class LineItem:
    """One product line of an order, prices per unit."""

    id: int
    name: str
    quantity: int
    price_ex_tax: Decimal
    price_inc_tax: Decimal
    product_id: int = 0
    sku: str = ""


@dataclass
class Order:
    """A V2 order as the sandbox stores it."""

    id: int
    store_hash: str
    customer_id: int
    status_id: int
    billing_address: dict[str, Any]
    lines: list[LineItem]
    currency: str
    date_created: datetime
    date_modified: datetime
    shipping_addresses: list[dict[str, Any]] = field(default_factory=list)
    shipping_cost_ex_tax: Decimal = ZERO
    shipping_cost_inc_tax: Decimal = ZERO
    handling_cost_ex_tax: Decimal = ZERO
    handling_cost_inc_tax: Decimal = ZERO
    discount_amount: Decimal = ZERO
    external_order_id: str | None = None
    external_merchant_id: str | None = None
    texts: dict[str, str | None] = field(default_factory=dict)
    payment_status: str = ""
    payment_method: str = ""
    payment_provider_id: str | None = None

    @property
    def subtotal_ex_tax(self) -> Decimal:
        return sum((line.price_ex_tax * line.quantity for line in self.lines), ZERO)

    @property
    def subtotal_inc_tax(self) -> Decimal:
        return sum((line.price_inc_tax * line.quantity for line in self.lines), ZERO)

    @property
    def total_ex_tax(self) -> Decimal:
        return (
            self.subtotal_ex_tax
            + self.shipping_cost_ex_tax
            + self.handling_cost_ex_tax
            - self.discount_amount
        )

    @property
    def total_inc_tax(self) -> Decimal:
        return (
            self.subtotal_inc_tax
            + self.shipping_cost_inc_tax
            + self.handling_cost_inc_tax
            - self.discount_amount
        )


def v2_error(message: str, status: int = 400) -> ApiRejection:
    return ApiRejection(status, message, envelope=Envelope.V2)


def invalid_field(name: str) -> ApiRejection:
    return v2_error(f"The field '{name}' is invalid.")


def check_writable(body: dict[str, Any], *, creating: bool) -> None:
    """Reject read-only fields, and external_merchant_id on a PUT."""
    for name in body:
        read_only = name in READ_ONLY_FIELDS
        if read_only or (name == "external_merchant_id" and not creating):
            raise v2_error(
                f"The field '{name}' cannot be written to. Please remove it from "
                "your request before trying again."
            )
        if name in UNSUPPORTED_FIELDS:
            raise v2_error(
                f"The field '{name}' cannot be set in the sandbox: it computes "
                "totals from products, shipping, handling and discount_amount."
            )


def parse_int(value: object, name: str, *, minimum: int = 0) -> int:
    """Return an integer sent as a number or a numeric string, else raise 400."""
    if isinstance(value, bool):
        raise invalid_field(name)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise invalid_field(name)
    return value


def parse_amount(value: object, name: str) -> Decimal:
    amount = parse_money(value)
    if amount is None:
        raise invalid_field(name)
    return amount


def parse_price_pair(
    body: dict[str, Any], ex_name: str, inc_name: str, *, required: bool
) -> tuple[Decimal, Decimal]:
    """Parse an ex-tax/inc-tax pair; a single value given is copied to the other."""
    ex_value = body.get(ex_name)
    inc_value = body.get(inc_name)
    if ex_value is None and inc_value is None:
        if required:
            raise invalid_field(inc_name)
        return ZERO, ZERO
    ex_amount = parse_amount(ex_value, ex_name) if ex_value is not None else None
    inc_amount = parse_amount(inc_value, inc_name) if inc_value is not None else None
    ex_amount = ex_amount if ex_amount is not None else inc_amount
    inc_amount = inc_amount if inc_amount is not None else ex_amount
    assert ex_amount is not None and inc_amount is not None
    return ex_amount, inc_amount


def check_address(address: object, name: str) -> dict[str, Any]:
    """Validate an address: an object whose zip has two or more characters."""
    if not isinstance(address, dict):
        raise invalid_field(name)
    if "state" in address and address["state"] is None:
        raise v2_error("The field 'state' does not allow null values.")
    zip_code = address.get("zip")
    if isinstance(zip_code, int) and not isinstance(zip_code, bool):
        zip_code = str(zip_code)
    if not isinstance(zip_code, str) or len(zip_code.strip()) < 2:
        raise invalid_field(name)
    return dict(address)


def check_shipping_addresses(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise invalid_field("shipping_addresses")
    return [check_address(item, "shipping_addresses") for item in value]


def parse_line_name(product: dict[str, Any], product_id: int) -> str:
    for key in ("name", "name_customer", "name_merchant"):
        name = product.get(key)
        if name is not None:
            if not isinstance(name, str) or not 1 <= len(name.strip()) <= 250:
                raise invalid_field(key)
            return name
    if product_id:
        return f"Product {product_id}"
    raise invalid_field("name")


def parse_new_line(product: object, line_id: int) -> LineItem:
    """Parse one product of a POST, or a PUT line without an id."""
    if not isinstance(product, dict):
        raise invalid_field("products")
    product_id = parse_int(product.get("product_id", 0), "product_id")
    quantity = parse_int(product.get("quantity"), "quantity", minimum=1)
    # NOTE: the sandbox has no catalog, so a catalog product needs a price too.
    price_ex, price_inc = parse_price_pair(
        product, "price_ex_tax", "price_inc_tax", required=True
    )
    sku = product.get("sku") or ""
    return LineItem(
        id=line_id,
        name=parse_line_name(product, product_id),
        quantity=quantity,
        price_ex_tax=price_ex,
        price_inc_tax=price_inc,
        product_id=product_id,
        sku=str(sku),
    )


def parse_new_lines(value: object, next_line_id: Callable[[], int]) -> list[LineItem]:
    if not isinstance(value, list) or not value:
        raise invalid_field("products")
    return [parse_new_line(product, next_line_id()) for product in value]


def parse_customer_id(value: object, customer_ids: Collection[int]) -> int:
    if value is None:
        return 0
    customer_id = parse_int(value, "customer_id")
    if customer_id != 0 and customer_id not in customer_ids:
        raise invalid_field("customer_id")
    return customer_id


def parse_status_id(value: object) -> int:
    status_id = parse_int(value, "status_id")
    if status_id not in ORDER_STATUSES:
        raise invalid_field("status_id")
    return status_id


def parse_currency(value: object) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise invalid_field("default_currency_code")
    return value.upper()


def parse_optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise invalid_field(name)
    return str(value)


def apply_costs(order: Order, body: dict[str, Any]) -> None:
    """Set shipping, handling and discount from the fields present in `body`."""
    if "shipping_cost_ex_tax" in body or "shipping_cost_inc_tax" in body:
        order.shipping_cost_ex_tax, order.shipping_cost_inc_tax = parse_price_pair(
            body, "shipping_cost_ex_tax", "shipping_cost_inc_tax", required=False
        )
    if "handling_cost_ex_tax" in body or "handling_cost_inc_tax" in body:
        order.handling_cost_ex_tax, order.handling_cost_inc_tax = parse_price_pair(
            body, "handling_cost_ex_tax", "handling_cost_inc_tax", required=False
        )
    if body.get("discount_amount") is not None:
        order.discount_amount = parse_amount(body["discount_amount"], "discount_amount")


def apply_texts(order: Order, body: dict[str, Any]) -> None:
    if "external_order_id" in body:
        order.external_order_id = parse_optional_text(body, "external_order_id")
    if "external_merchant_id" in body:
        order.external_merchant_id = parse_optional_text(body, "external_merchant_id")
    for name in TEXT_FIELDS:
        if name in body:
            order.texts[name] = parse_optional_text(body, name)


def check_totals(order: Order) -> None:
    if order.total_inc_tax < 0 or order.total_ex_tax < 0:
        raise invalid_field("discount_amount")


def build_order(
    body: object,
    *,
    order_id: int,
    store_hash: str,
    now: datetime,
    customer_ids: Collection[int],
    store_currency: str,
    next_line_id: Callable[[], int],
) -> Order:
    """Validate a POST /v2/orders body and return the new order; 400 if invalid."""
    if not isinstance(body, dict):
        raise v2_error("The request body must be a JSON object.")
    check_writable(body, creating=True)
    billing_address = check_address(body.get("billing_address"), "billing_address")
    order = Order(
        id=order_id,
        store_hash=store_hash,
        customer_id=parse_customer_id(body.get("customer_id"), customer_ids),
        status_id=parse_status_id(body.get("status_id", PENDING)),
        billing_address=billing_address,
        lines=[],
        currency=store_currency,
        date_created=now,
        date_modified=now,
    )
    if body.get("shipping_addresses") is not None:
        order.shipping_addresses = check_shipping_addresses(body["shipping_addresses"])
    if body.get("default_currency_code") is not None:
        order.currency = parse_currency(body["default_currency_code"])
    order.lines = parse_new_lines(body.get("products"), next_line_id)
    apply_costs(order, body)
    apply_texts(order, body)
    check_totals(order)
    return order


def update_lines(
    lines: list[LineItem], changes: object, next_line_id: Callable[[], int]
) -> list[LineItem]:
    """Apply a PUT's products: update by id, quantity 0 removes, no id adds."""
    if not isinstance(changes, list):
        raise invalid_field("products")
    by_id = {line.id: line for line in lines}
    for change in changes:
        if not isinstance(change, dict):
            raise invalid_field("products")
        if change.get("id") is None:
            line = parse_new_line(change, next_line_id())
            by_id[line.id] = line
            continue
        update_line(by_id, change)
    if not by_id:
        raise invalid_field("products")
    return list(by_id.values())


def update_line(by_id: dict[int, LineItem], change: dict[str, Any]) -> None:
    line_id = parse_int(change["id"], "id")
    if line_id not in by_id:
        raise v2_error(f"The order has no product line with id {line_id}.")
    line = by_id[line_id]
    if "quantity" in change:
        quantity = parse_int(change["quantity"], "quantity")
        if quantity == 0:
            del by_id[line_id]
            return
        line.quantity = quantity
    if "price_ex_tax" in change or "price_inc_tax" in change:
        line.price_ex_tax, line.price_inc_tax = parse_price_pair(
            change, "price_ex_tax", "price_inc_tax", required=True
        )


def updated_order(
    order: Order,
    body: object,
    *,
    now: datetime,
    customer_ids: Collection[int],
    next_line_id: Callable[[], int],
) -> Order:
    """Validate a PUT /v2/orders/{id} body and return the changed copy of `order`.

    The stored order is left untouched, so an invalid body changes nothing.
    """
    if not isinstance(body, dict):
        raise v2_error("The request body must be a JSON object.")
    check_writable(body, creating=False)
    changed = copy.deepcopy(order)
    if "status_id" in body:
        changed.status_id = parse_status_id(body["status_id"])
    if "customer_id" in body:
        changed.customer_id = parse_customer_id(body["customer_id"], customer_ids)
    if "billing_address" in body:
        changed.billing_address = check_address(
            body["billing_address"], "billing_address"
        )
    if "shipping_addresses" in body:
        changed.shipping_addresses = check_shipping_addresses(
            body["shipping_addresses"]
        )
    if "products" in body:
        changed.lines = update_lines(changed.lines, body["products"], next_line_id)
    apply_costs(changed, body)
    apply_texts(changed, body)
    check_totals(changed)
    changed.date_modified = now
    return changed


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment)


def render_line(order: Order, line: LineItem) -> dict[str, Any]:
    """Render a product line as GET /v2/orders/{id}/products lists it."""
    return {
        "id": line.id,
        "order_id": order.id,
        "product_id": line.product_id,
        "name": line.name,
        "sku": line.sku,
        "type": "physical",
        "quantity": line.quantity,
        "base_price": format_money(line.price_ex_tax),
        "price_ex_tax": format_money(line.price_ex_tax),
        "price_inc_tax": format_money(line.price_inc_tax),
        "price_tax": format_money(line.price_inc_tax - line.price_ex_tax),
        "base_total": format_money(line.price_ex_tax * line.quantity),
        "total_ex_tax": format_money(line.price_ex_tax * line.quantity),
        "total_inc_tax": format_money(line.price_inc_tax * line.quantity),
        "total_tax": format_money(
            (line.price_inc_tax - line.price_ex_tax) * line.quantity
        ),
        "quantity_shipped": 0,
        "is_refunded": False,
        "applied_discounts": [],
    }


def render_totals(order: Order) -> dict[str, str]:
    costs = {
        "subtotal_ex_tax": order.subtotal_ex_tax,
        "subtotal_inc_tax": order.subtotal_inc_tax,
        "subtotal_tax": order.subtotal_inc_tax - order.subtotal_ex_tax,
        "base_shipping_cost": order.shipping_cost_ex_tax,
        "shipping_cost_ex_tax": order.shipping_cost_ex_tax,
        "shipping_cost_inc_tax": order.shipping_cost_inc_tax,
        "shipping_cost_tax": order.shipping_cost_inc_tax - order.shipping_cost_ex_tax,
        "base_handling_cost": order.handling_cost_ex_tax,
        "handling_cost_ex_tax": order.handling_cost_ex_tax,
        "handling_cost_inc_tax": order.handling_cost_inc_tax,
        "handling_cost_tax": order.handling_cost_inc_tax - order.handling_cost_ex_tax,
        "base_wrapping_cost": ZERO,
        "wrapping_cost_ex_tax": ZERO,
        "wrapping_cost_inc_tax": ZERO,
        "wrapping_cost_tax": ZERO,
        "total_ex_tax": order.total_ex_tax,
        "total_inc_tax": order.total_inc_tax,
        "total_tax": order.total_inc_tax - order.total_ex_tax,
        "discount_amount": order.discount_amount,
        "coupon_discount": ZERO,
        "refunded_amount": ZERO,
        "store_credit_amount": ZERO,
        "gift_certificate_amount": ZERO,
    }
    return {name: format_money(amount) for name, amount in costs.items()}


def render_order(order: Order, base_url: str) -> dict[str, Any]:
    """Render an order in the V2 shape: money as 4-decimal strings, RFC-2822 dates.

    `base_url` is the API host URL up to and including /v2, for resource links.
    """
    link = f"{base_url}/orders/{order.id}"
    body: dict[str, Any] = {
        "id": order.id,
        "customer_id": order.customer_id,
        "date_created": rfc2822(order.date_created),
        "date_modified": rfc2822(order.date_modified),
        "date_shipped": "",
        "status_id": order.status_id,
        "status": ORDER_STATUSES[order.status_id],
        "custom_status": ORDER_STATUSES[order.status_id],
        **render_totals(order),
        "items_total": sum(line.quantity for line in order.lines),
        "items_shipped": 0,
        "payment_method": order.payment_method,
        "payment_provider_id": order.payment_provider_id,
        "payment_status": order.payment_status,
        "order_is_digital": False,
        "is_tax_inclusive_pricing": False,
        "tax_provider_id": "",
        "ip_address": "",
        "ip_address_v6": "",
        "geoip_country": "",
        "geoip_country_iso2": "",
        "currency_id": 1,
        "currency_code": order.currency,
        "currency_exchange_rate": "1.0000000000",
        "default_currency_id": 1,
        "default_currency_code": order.currency,
        "store_default_currency_code": order.currency,
        "store_default_to_transactional_exchange_rate": "1.0000000000",
        "is_deleted": False,
        "is_email_opt_in": False,
        "order_source": "external",
        "channel_id": 1,
        "cart_id": None,
        "ebay_order_id": "0",
        "external_id": None,
        "external_order_id": order.external_order_id,
        "external_merchant_id": order.external_merchant_id,
        "credit_card_type": None,
        "billing_address": order.billing_address,
        "shipping_address_count": len(order.shipping_addresses),
        "products": {
            "url": f"{link}/products",
            "resource": f"/orders/{order.id}/products",
        },
        "shipping_addresses": {
            "url": f"{link}/shippingaddresses",
            "resource": f"/orders/{order.id}/shippingaddresses",
        },
        "coupons": {
            "url": f"{link}/coupons",
            "resource": f"/orders/{order.id}/coupons",
        },
    }
    for name in TEXT_FIELDS:
        body[name] = order.texts.get(name) or (
            "" if name != "external_source" else None
        )
    return body
