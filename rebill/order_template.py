"""The order template: what each renewal order of a subscription contains.

A template is the merchant's part of BigCommerce's V2 create-order body
(POST /v2/orders): the billing address, the product lines, optional shipping
addresses and an optional shipping cost. rebill adds the fields it owns for
every renewal (status_id 0, customer_id, currency, external ids) in
OrderTemplate.to_order_body.

rebill computes the charge amount from the template, so every line carries
both of its prices, and fields that would change the order total outside that
computation (discounts, handling, wrapping, fees, total overrides) are
rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from rebill.errors import InvalidInput
from rebill.money import format_amount, parse_amount, to_minor_units
from rebill.validation import (
    child_path,
    reject_unknown_keys,
    require_list,
    require_object,
    require_positive_int,
    require_string,
)

ROOT = "order_template"

TEMPLATE_FIELDS = frozenset(
    {
        "billing_address",
        "products",
        "shipping_addresses",
        "shipping_cost_inc_tax",
        "shipping_cost_ex_tax",
    }
)

# Fields of the create-order body that rebill fills in for each renewal order.
REBILL_OWNED_FIELDS = frozenset(
    {
        "id",
        "status_id",
        "customer_id",
        "default_currency_code",
        "currency_code",
        "external_source",
        "external_order_id",
        "external_id",
        "staff_notes",
    }
)

ADDRESS_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "company",
        "street_1",
        "street_2",
        "city",
        "state",
        "zip",
        "country",
        "country_iso2",
        "phone",
        "email",
    }
)
SHIPPING_ADDRESS_FIELDS = ADDRESS_FIELDS | {"shipping_method"}
REQUIRED_ADDRESS_FIELDS = ("first_name", "last_name", "street_1", "city", "email")

PRICE_FIELDS = ("price_inc_tax", "price_ex_tax")
CUSTOM_LINE_FIELDS = frozenset(
    {"name", "name_merchant", "sku", "upc", "quantity", *PRICE_FIELDS}
)
CATALOG_LINE_FIELDS = frozenset(
    {
        "product_id",
        "variant_id",
        "product_options",
        "name",
        "name_merchant",
        "upc",
        "quantity",
        *PRICE_FIELDS,
    }
)
# The Orders V2 spec limits a custom line's name to 250 characters. rebill
# applies the same limit to catalog lines.
MAX_PRODUCT_NAME_LENGTH = 250
# The Orders V2 spec limits staff_notes to 65535 characters.
MAX_STAFF_NOTES_LENGTH = 65535

_COUNTRY_ISO2 = re.compile(r"[A-Za-z]{2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

ZERO = Decimal(0)


@dataclass(frozen=True)
class OrderTemplate:
    """A validated order template with Decimal prices.

    Each product is a dict with the merchant's fields, an int `quantity` and
    Decimal `price_inc_tax` and `price_ex_tax`. Addresses are dicts of strings.
    """

    billing_address: dict[str, str]
    products: tuple[dict[str, Any], ...]
    shipping_addresses: tuple[dict[str, str], ...] = ()
    shipping_cost_inc_tax: Decimal = ZERO
    shipping_cost_ex_tax: Decimal = ZERO

    def total_minor_units(self, currency: str) -> int:
        """Return the order total including tax, in minor units of `currency`.

        The total is the sum of quantity x price_inc_tax over all lines plus the
        shipping cost including tax. Each price is converted to minor units
        exactly before it is multiplied, so no rounding happens anywhere.
        """
        total = to_minor_units(self.shipping_cost_inc_tax, currency)
        for product in self.products:
            unit_price = to_minor_units(product["price_inc_tax"], currency)
            total += product["quantity"] * unit_price
        return total

    def to_order_body(
        self,
        *,
        customer_id: int,
        currency: str,
        external_order_id: str,
        staff_notes: str | None = None,
    ) -> dict[str, Any]:
        """Build the JSON body of POST /v2/orders for one renewal order.

        The order is created Incomplete (status_id 0), the only status that the
        Payments API charges. Prices go out as strings with the currency's
        decimals. Raises ValueError for a guest customer_id (0), an empty
        external_order_id or staff_notes longer than BigCommerce accepts.
        """
        _check_order_ids(customer_id, external_order_id, staff_notes)
        body: dict[str, Any] = {
            "status_id": 0,
            "customer_id": customer_id,
            "billing_address": dict(self.billing_address),
            "products": [_product_to_json(p, currency) for p in self.products],
        }
        if self.shipping_addresses:
            body["shipping_addresses"] = [dict(a) for a in self.shipping_addresses]
        if self.shipping_cost_inc_tax or self.shipping_cost_ex_tax:
            body["shipping_cost_inc_tax"] = format_amount(
                self.shipping_cost_inc_tax, currency
            )
            body["shipping_cost_ex_tax"] = format_amount(
                self.shipping_cost_ex_tax, currency
            )

        body["external_source"] = "rebill"
        body["external_order_id"] = external_order_id
        # NOTE: the Orders V2 spec makes default_currency_code writable only on
        # stores with multi-currency enabled. What other stores do with it is
        # undocumented.
        body["default_currency_code"] = currency
        if staff_notes is not None:
            body["staff_notes"] = staff_notes
        return body

    def to_json(self) -> dict[str, Any]:
        """Return the template as JSON-ready data, with prices as strings."""
        return {
            "billing_address": dict(self.billing_address),
            "products": [_product_to_json(p, None) for p in self.products],
            "shipping_addresses": [dict(a) for a in self.shipping_addresses],
            "shipping_cost_inc_tax": str(self.shipping_cost_inc_tax),
            "shipping_cost_ex_tax": str(self.shipping_cost_ex_tax),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrderTemplate:
        """Rebuild a template stored with to_json.

        The data is trusted to come from to_json, so only the types are checked:
        a price that is not a decimal string raises ValueError.
        """
        products = []
        for stored in data["products"]:
            product = dict(stored)
            for name in PRICE_FIELDS:
                product[name] = _decimal_from_json(stored[name])
            if "product_options" in stored:
                product["product_options"] = [
                    dict(option) for option in stored["product_options"]
                ]
            products.append(product)
        return cls(
            billing_address=dict(data["billing_address"]),
            products=tuple(products),
            shipping_addresses=tuple(dict(a) for a in data["shipping_addresses"]),
            shipping_cost_inc_tax=_decimal_from_json(data["shipping_cost_inc_tax"]),
            shipping_cost_ex_tax=_decimal_from_json(data["shipping_cost_ex_tax"]),
        )


def _check_order_ids(
    customer_id: int, external_order_id: str, staff_notes: str | None
) -> None:
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        raise ValueError(f"customer_id must be an int, not {customer_id!r}")
    if customer_id < 1:
        raise ValueError(
            f"customer_id {customer_id} is a guest or invalid: a renewal order needs "
            "a registered customer, because only they have stored instruments"
        )
    if not external_order_id:
        raise ValueError("external_order_id must not be empty")
    if staff_notes is not None and len(staff_notes) > MAX_STAFF_NOTES_LENGTH:
        raise ValueError(
            f"staff_notes has {len(staff_notes)} characters, but BigCommerce "
            f"accepts at most {MAX_STAFF_NOTES_LENGTH}"
        )


def _product_to_json(
    product: Mapping[str, Any], currency: str | None
) -> dict[str, Any]:
    """Copy a product line with its prices as strings.

    With a currency, the prices have exactly its decimals (the order body).
    Without one, they keep the decimals they were parsed with (storage).
    """
    line = dict(product)
    for name in PRICE_FIELDS:
        price: Decimal = product[name]
        line[name] = str(price) if currency is None else format_amount(price, currency)
    if "product_options" in product:
        line["product_options"] = [dict(o) for o in product["product_options"]]
    return line


def _decimal_from_json(value: object) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"stored price must be a decimal string, not {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"stored price {value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"stored price {value!r} is not a finite number")
    return amount


def parse_order_template(raw: object, currency: str, *, record: str) -> OrderTemplate:
    """Validate a merchant's order template and return it with Decimal prices.

    `raw` has the shape of the create-order body of BigCommerce's V2 Orders API
    without the fields that rebill sets. Raises InvalidInput on the first
    problem, with `field` a path such as "order_template.products[1].quantity".
    """
    template = require_object(raw, record=record, field=ROOT)
    for key in template:
        if key in REBILL_OWNED_FIELDS:
            raise InvalidInput(
                record,
                child_path(ROOT, key),
                "rebill sets this field on every renewal order: remove it "
                "from the template",
            )
    reject_unknown_keys(template, TEMPLATE_FIELDS, record=record, path=ROOT)

    billing_address = _parse_billing_address(template, record=record)
    products = _parse_products(template, currency, record=record)
    shipping_addresses = _parse_shipping_addresses(template, record=record)
    shipping_inc, shipping_ex = _parse_shipping_cost(template, currency, record=record)
    return OrderTemplate(
        billing_address=billing_address,
        products=products,
        shipping_addresses=shipping_addresses,
        shipping_cost_inc_tax=shipping_inc,
        shipping_cost_ex_tax=shipping_ex,
    )


def _parse_billing_address(
    template: Mapping[str, object], *, record: str
) -> dict[str, str]:
    path = child_path(ROOT, "billing_address")
    if template.get("billing_address") is None:
        raise InvalidInput(record, path, "missing: BigCommerce requires it")
    return _parse_address(
        template["billing_address"], ADDRESS_FIELDS, record=record, path=path
    )


def _parse_shipping_addresses(
    template: Mapping[str, object], *, record: str
) -> tuple[dict[str, str], ...]:
    path = child_path(ROOT, "shipping_addresses")
    raw = template.get("shipping_addresses")
    if raw is None:
        return ()
    items = require_list(raw, record=record, field=path)
    return tuple(
        _parse_address(
            item, SHIPPING_ADDRESS_FIELDS, record=record, path=child_path(path, index)
        )
        for index, item in enumerate(items)
    )


def _parse_address(
    raw: object, allowed: frozenset[str], *, record: str, path: str
) -> dict[str, str]:
    """Validate an address and return a copy of its fields.

    The Orders V2 spec requires only zip (two or more characters), but rebill
    also requires name, street, city, country and email, because an order
    without them is of no use to ship or to bill. Every field must be a string,
    as the spec types it, so a null state is rejected.
    """
    address = require_object(raw, record=record, field=path)
    reject_unknown_keys(address, allowed, record=record, path=path)
    result: dict[str, str] = {}
    for key, value in address.items():
        field = child_path(path, key)
        if value is None:
            raise InvalidInput(
                record,
                field,
                "is null, which BigCommerce rejects: omit the field or give a string",
            )
        result[key] = require_string(value, record=record, field=field, min_length=0)

    for key in ("zip", *REQUIRED_ADDRESS_FIELDS):
        if key not in result:
            raise InvalidInput(record, child_path(path, key), "missing")
    require_string(
        result["zip"], record=record, field=child_path(path, "zip"), min_length=2
    )
    for key in REQUIRED_ADDRESS_FIELDS:
        require_string(result[key], record=record, field=child_path(path, key))
    _check_country(result, record=record, path=path)
    _check_email(result["email"], record=record, field=child_path(path, "email"))
    return result


def _check_country(address: Mapping[str, str], *, record: str, path: str) -> None:
    country = address.get("country", "").strip()
    iso2 = address.get("country_iso2", "").strip()
    if not country and not iso2:
        raise InvalidInput(
            record,
            child_path(path, "country_iso2"),
            "missing: give country_iso2 (such as 'US') or country "
            "(such as 'United States')",
        )
    if iso2 and not _COUNTRY_ISO2.fullmatch(iso2):
        raise InvalidInput(
            record,
            child_path(path, "country_iso2"),
            f"invalid country code {iso2!r}: use the two-letter ISO 3166-1 code, "
            "such as 'US'",
        )


def _check_email(email: str, *, record: str, field: str) -> None:
    if not _EMAIL.fullmatch(email.strip()):
        raise InvalidInput(
            record,
            field,
            f"invalid email address {email!r}: expected a form like 'name@example.com'",
        )


def _parse_products(
    template: Mapping[str, object], currency: str, *, record: str
) -> tuple[dict[str, Any], ...]:
    path = child_path(ROOT, "products")
    if template.get("products") is None:
        raise InvalidInput(record, path, "missing: a template needs at least 1 product")
    items = require_list(template["products"], record=record, field=path)
    if not items:
        raise InvalidInput(record, path, "must contain at least 1 product")
    return tuple(
        _parse_product(item, currency, record=record, path=child_path(path, index))
        for index, item in enumerate(items)
    )


def _parse_product(
    raw: object, currency: str, *, record: str, path: str
) -> dict[str, Any]:
    """Validate one product line: a catalog line (product_id) or a custom line (name).

    Both kinds need both prices, so that the charge amount is fixed by the
    template and known before the order is created.
    """
    line = require_object(raw, record=record, field=path)
    if "product_id" in line:
        reject_unknown_keys(line, CATALOG_LINE_FIELDS, record=record, path=path)
        product = _parse_catalog_fields(line, record=record, path=path)
    elif "name" in line:
        reject_unknown_keys(line, CUSTOM_LINE_FIELDS, record=record, path=path)
        product = {}
    else:
        raise InvalidInput(
            record,
            path,
            "each product needs product_id (a catalog product) or name (a custom line)",
        )

    product.update(_parse_line_strings(line, record=record, path=path))
    product["quantity"] = _parse_quantity(line, record=record, path=path)
    price_inc, price_ex = _parse_prices(line, currency, record=record, path=path)
    product["price_inc_tax"] = price_inc
    product["price_ex_tax"] = price_ex
    return product


def _parse_catalog_fields(
    line: Mapping[str, object], *, record: str, path: str
) -> dict[str, Any]:
    product: dict[str, Any] = {
        "product_id": require_positive_int(
            line["product_id"], record=record, field=child_path(path, "product_id")
        )
    }
    if line.get("variant_id") is not None:
        product["variant_id"] = require_positive_int(
            line["variant_id"], record=record, field=child_path(path, "variant_id")
        )
    if line.get("product_options") is not None:
        product["product_options"] = _parse_product_options(
            line["product_options"],
            record=record,
            path=child_path(path, "product_options"),
        )
    return product


def _parse_product_options(
    raw: object, *, record: str, path: str
) -> list[dict[str, Any]]:
    options = []
    for index, item in enumerate(require_list(raw, record=record, field=path)):
        option_path = child_path(path, index)
        option = require_object(item, record=record, field=option_path)
        reject_unknown_keys(option, ("id", "value"), record=record, path=option_path)
        option_id = require_positive_int(
            option.get("id"), record=record, field=child_path(option_path, "id")
        )
        value = require_string(
            option.get("value"),
            record=record,
            field=child_path(option_path, "value"),
        )
        options.append({"id": option_id, "value": value})
    return options


def _parse_line_strings(
    line: Mapping[str, object], *, record: str, path: str
) -> dict[str, str]:
    strings: dict[str, str] = {}
    for key in ("name", "name_merchant", "sku", "upc"):
        if key not in line:
            continue
        strings[key] = require_string(
            line[key], record=record, field=child_path(path, key)
        )
    name = strings.get("name", "")
    if len(name) > MAX_PRODUCT_NAME_LENGTH:
        raise InvalidInput(
            record,
            child_path(path, "name"),
            f"is {len(name)} characters long: BigCommerce accepts at most "
            f"{MAX_PRODUCT_NAME_LENGTH}",
        )
    return strings


def _parse_quantity(line: Mapping[str, object], *, record: str, path: str) -> int:
    field = child_path(path, "quantity")
    if line.get("quantity") is None:
        raise InvalidInput(record, field, "missing: give a whole number of 1 or more")
    return require_positive_int(line["quantity"], record=record, field=field)


def _parse_prices(
    line: Mapping[str, object], currency: str, *, record: str, path: str
) -> tuple[Decimal, Decimal]:
    prices = []
    for name in PRICE_FIELDS:
        field = child_path(path, name)
        if line.get(name) is None:
            raise InvalidInput(
                record,
                field,
                "missing: every product needs both price_inc_tax and price_ex_tax, "
                "so that rebill knows the order total before it charges",
            )
        price = parse_amount(line[name], currency, record=record, field=field)
        if price <= 0:
            raise InvalidInput(record, field, f"must be more than 0, not {price}")
        prices.append(price)

    price_inc, price_ex = prices
    _check_tax_pair(price_inc, price_ex, record=record, field=path, prefix="price")
    return price_inc, price_ex


def _parse_shipping_cost(
    template: Mapping[str, object], currency: str, *, record: str
) -> tuple[Decimal, Decimal]:
    names = ("shipping_cost_inc_tax", "shipping_cost_ex_tax")
    present = [name for name in names if template.get(name) is not None]
    if not present:
        return ZERO, ZERO
    if len(present) == 1:
        missing = next(name for name in names if name not in present)
        raise InvalidInput(
            record,
            child_path(ROOT, missing),
            f"missing: give {missing} together with {present[0]}",
        )

    cost_inc, cost_ex = (
        parse_amount(
            template[name], currency, record=record, field=child_path(ROOT, name)
        )
        for name in names
    )
    _check_tax_pair(
        cost_inc, cost_ex, record=record, field=ROOT, prefix="shipping_cost"
    )
    return cost_inc, cost_ex


def _check_tax_pair(
    including: Decimal, excluding: Decimal, *, record: str, field: str, prefix: str
) -> None:
    if including < excluding:
        raise InvalidInput(
            record,
            child_path(field, f"{prefix}_inc_tax"),
            f"{including} is less than {prefix}_ex_tax {excluding}: the amount "
            "including tax cannot be lower than the amount excluding tax",
        )
