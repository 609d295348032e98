from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from rebill.errors import InvalidInput
from rebill.order_template import OrderTemplate, parse_order_template

RECORD = "line 3"


def valid_template() -> dict[str, Any]:
    """Return a template shaped like a V2 create-order body.

    It has two custom lines, one catalog line, a shipping address and a
    shipping cost.
    """
    return {
        "billing_address": {
            "first_name": "Mara",
            "last_name": "Quill",
            "company": "",
            "street_1": "40 Harbour Road",
            "street_2": "",
            "city": "Portland",
            "state": "Oregon",
            "zip": "97201",
            "country": "United States",
            "country_iso2": "US",
            "email": "mara.quill@example.com",
        },
        "shipping_addresses": [
            {
                "first_name": "Ivo",
                "last_name": "Quill",
                "company": "Quill Roasters",
                "street_1": "7 Mill Street",
                "street_2": "Unit 2",
                "city": "Salem",
                "state": "Oregon",
                "zip": "97301",
                "country": "United States",
                "country_iso2": "US",
                "phone": "",
                "email": "ivo.quill@example.com",
                "shipping_method": "Flat Rate",
            }
        ],
        "products": [
            {
                "name": "Monthly Coffee Box",
                "sku": "BOX-M",
                "quantity": 1,
                "price_inc_tax": 21.98,
                "price_ex_tax": 20,
            },
            {
                "name": "Filter Papers",
                "quantity": 3,
                "price_inc_tax": "4.40",
                "price_ex_tax": "4.00",
            },
            {
                "product_id": 118,
                "variant_id": 7,
                "product_options": [{"id": 12, "value": "34"}],
                "quantity": 2,
                "price_inc_tax": Decimal("9.90"),
                "price_ex_tax": Decimal("9"),
            },
        ],
        "shipping_cost_inc_tax": "5.50",
        "shipping_cost_ex_tax": "5.00",
    }


def test_parse_normalises_prices_to_decimal() -> None:
    template = parse_order_template(valid_template(), "USD", record=RECORD)

    prices = [(p["price_inc_tax"], p["price_ex_tax"]) for p in template.products]
    assert prices == [
        (Decimal("21.98"), Decimal("20.00")),
        (Decimal("4.40"), Decimal("4.00")),
        (Decimal("9.90"), Decimal("9.00")),
    ]
    assert template.shipping_cost_inc_tax == Decimal("5.50")
    assert template.shipping_cost_ex_tax == Decimal("5.00")
    assert template.billing_address["email"] == "mara.quill@example.com"
    assert template.shipping_addresses[0]["shipping_method"] == "Flat Rate"
    assert template.products[2]["product_options"] == [{"id": 12, "value": "34"}]


def test_parse_does_not_share_input_dicts() -> None:
    raw = valid_template()
    template = parse_order_template(raw, "USD", record=RECORD)

    raw["billing_address"]["city"] = "Changed"
    raw["products"][0]["quantity"] = 99

    assert template.billing_address["city"] == "Portland"
    assert template.products[0]["quantity"] == 1


def test_json_round_trip() -> None:
    template = parse_order_template(valid_template(), "USD", record=RECORD)

    stored = json.loads(json.dumps(template.to_json()))
    restored = OrderTemplate.from_json(stored)

    assert restored == template
    assert stored["products"][0]["price_ex_tax"] == "20.00"
    assert stored["shipping_cost_inc_tax"] == "5.50"
    assert restored.to_order_body(
        customer_id=42, currency="USD", external_order_id="sub-1/cycle-1"
    ) == template.to_order_body(
        customer_id=42, currency="USD", external_order_id="sub-1/cycle-1"
    )


def test_json_round_trip_without_optional_parts() -> None:
    raw = valid_template()
    del raw["shipping_addresses"]
    del raw["shipping_cost_inc_tax"]
    del raw["shipping_cost_ex_tax"]
    raw["products"] = [raw["products"][1]]
    template = parse_order_template(raw, "USD", record=RECORD)

    restored = OrderTemplate.from_json(json.loads(json.dumps(template.to_json())))

    assert restored == template
    assert restored.shipping_addresses == ()
    assert restored.shipping_cost_inc_tax == 0


@pytest.mark.parametrize(
    ("price", "message_part"),
    [(21.98, "must be a decimal string"), ("twenty", "is not a number")],
    ids=["float", "words"],
)
def test_from_json_rejects_price(price: object, message_part: str) -> None:
    stored = parse_order_template(valid_template(), "USD", record=RECORD).to_json()
    stored["products"][0]["price_inc_tax"] = price

    with pytest.raises(ValueError, match=message_part):
        OrderTemplate.from_json(stored)


def test_order_body_fields() -> None:
    template = parse_order_template(valid_template(), "USD", record=RECORD)

    body = template.to_order_body(
        customer_id=42,
        currency="USD",
        external_order_id="sub-9/2025-07-01T13:00:00Z",
        staff_notes="Renewal 3 of subscription 9",
    )

    assert body["status_id"] == 0
    assert body["customer_id"] == 42
    assert body["external_source"] == "rebill"
    assert body["external_order_id"] == "sub-9/2025-07-01T13:00:00Z"
    assert body["default_currency_code"] == "USD"
    assert body["staff_notes"] == "Renewal 3 of subscription 9"
    assert body["billing_address"] == valid_template()["billing_address"]
    assert body["shipping_addresses"] == valid_template()["shipping_addresses"]
    assert body["shipping_cost_inc_tax"] == "5.50"
    assert body["shipping_cost_ex_tax"] == "5.00"
    assert json.loads(json.dumps(body)) == body


def test_order_body_products() -> None:
    template = parse_order_template(valid_template(), "USD", record=RECORD)

    products = template.to_order_body(
        customer_id=42, currency="USD", external_order_id="x"
    )["products"]

    assert products[0] == {
        "name": "Monthly Coffee Box",
        "sku": "BOX-M",
        "quantity": 1,
        "price_inc_tax": "21.98",
        "price_ex_tax": "20.00",
    }
    assert products[1]["price_inc_tax"] == "4.40"
    assert products[1]["quantity"] == 3
    assert products[2] == {
        "product_id": 118,
        "variant_id": 7,
        "product_options": [{"id": 12, "value": "34"}],
        "quantity": 2,
        "price_inc_tax": "9.90",
        "price_ex_tax": "9.00",
    }


def test_order_body_omits_zero_shipping_and_notes() -> None:
    raw = valid_template()
    del raw["shipping_addresses"]
    del raw["shipping_cost_inc_tax"]
    del raw["shipping_cost_ex_tax"]
    template = parse_order_template(raw, "USD", record=RECORD)

    body = template.to_order_body(customer_id=7, currency="USD", external_order_id="x")

    assert "shipping_cost_inc_tax" not in body
    assert "shipping_cost_ex_tax" not in body
    assert "shipping_addresses" not in body
    assert "staff_notes" not in body


def test_order_body_jpy_prices_have_no_decimals() -> None:
    raw = valid_template()
    raw["products"] = [
        {"name": "Tea", "quantity": 2, "price_inc_tax": "1100", "price_ex_tax": 1000}
    ]
    raw["shipping_cost_inc_tax"] = 550
    raw["shipping_cost_ex_tax"] = "500"
    template = parse_order_template(raw, "JPY", record=RECORD)

    body = template.to_order_body(customer_id=7, currency="JPY", external_order_id="x")

    assert body["products"][0]["price_inc_tax"] == "1100"
    assert body["products"][0]["price_ex_tax"] == "1000"
    assert body["shipping_cost_inc_tax"] == "550"
    assert body["default_currency_code"] == "JPY"


@pytest.mark.parametrize(
    "customer_id", [0, -5, True], ids=["guest", "negative", "bool"]
)
def test_order_body_rejects_customer_id(customer_id: int) -> None:
    template = parse_order_template(valid_template(), "USD", record=RECORD)

    with pytest.raises(ValueError, match="customer_id"):
        template.to_order_body(
            customer_id=customer_id, currency="USD", external_order_id="x"
        )


def test_order_body_rejects_currency_with_fewer_decimals() -> None:
    template = parse_order_template(valid_template(), "USD", record=RECORD)

    with pytest.raises(ValueError, match="JPY amounts have no decimal places"):
        template.to_order_body(customer_id=7, currency="JPY", external_order_id="x")


def test_order_body_rejects_empty_external_order_id() -> None:
    template = parse_order_template(valid_template(), "USD", record=RECORD)

    with pytest.raises(ValueError, match="external_order_id"):
        template.to_order_body(customer_id=7, currency="USD", external_order_id="")


def test_total_usd() -> None:
    template = parse_order_template(valid_template(), "USD", record=RECORD)

    # 1 x 21.98 + 3 x 4.40 + 2 x 9.90 + 5.50 shipping = 60.48
    assert template.total_minor_units("USD") == 6048


def test_total_jpy() -> None:
    raw = valid_template()
    raw["products"] = [
        {"name": "Sencha", "quantity": 3, "price_inc_tax": 1080, "price_ex_tax": 1000},
        {"product_id": 5, "quantity": 1, "price_inc_tax": "550", "price_ex_tax": "500"},
    ]
    raw["shipping_cost_inc_tax"] = "770"
    raw["shipping_cost_ex_tax"] = "700"
    template = parse_order_template(raw, "JPY", record=RECORD)

    # 3 x 1080 + 550 + 770 shipping = 4560 yen, and the yen is the minor unit.
    assert template.total_minor_units("JPY") == 4560


def test_total_kwd() -> None:
    raw = valid_template()
    raw["products"] = [
        {"name": "Dates", "quantity": 4, "price_inc_tax": "1.255", "price_ex_tax": 1.2},
        {"name": "Cardamom", "quantity": 1, "price_inc_tax": 0.5, "price_ex_tax": 0.5},
    ]
    raw["shipping_cost_inc_tax"] = "0.750"
    raw["shipping_cost_ex_tax"] = "0.7"
    template = parse_order_template(raw, "KWD", record=RECORD)

    # 4 x 1.255 + 0.500 + 0.750 shipping = 6.270 KWD = 6270 fils.
    assert template.total_minor_units("KWD") == 6270


def test_total_avoids_float_error() -> None:
    raw = valid_template()
    raw["products"] = [
        {"name": "Sample", "quantity": 3, "price_inc_tax": 0.1, "price_ex_tax": 0.1}
    ]
    del raw["shipping_cost_inc_tax"]
    del raw["shipping_cost_ex_tax"]
    template = parse_order_template(raw, "USD", record=RECORD)

    # 3 * 0.1 is 0.30000000000000004 in floats.
    assert template.total_minor_units("USD") == 30


Mutation = Callable[[dict[str, Any]], None]


def set_path(path: str, value: object) -> Mutation:
    """Return a mutation that sets a dotted path, with integer parts as indexes."""

    def mutate(template: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = template
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def delete_path(*paths: str) -> Mutation:
    """Return a mutation that deletes the dotted paths."""

    def mutate(template: dict[str, Any]) -> None:
        for path in paths:
            *parents, last = path.split(".")
            target: Any = template
            for part in parents:
                target = target[int(part)] if part.isdigit() else target[part]
            del target[last]

    return mutate


BAD_TEMPLATES: list[tuple[str, Mutation, str, str]] = [
    (
        "status-id",
        set_path("status_id", 1),
        "order_template.status_id",
        "rebill sets this field",
    ),
    (
        "customer-id",
        set_path("customer_id", 42),
        "order_template.customer_id",
        "rebill sets this field",
    ),
    ("order-id", set_path("id", 1001), "order_template.id", "rebill sets this field"),
    (
        "currency-code",
        set_path("default_currency_code", "EUR"),
        "order_template.default_currency_code",
        "rebill sets this field",
    ),
    (
        "discount",
        set_path("discount_amount", "1.00"),
        "order_template.discount_amount",
        "unknown field",
    ),
    (
        "typo-products",
        set_path("product", []),
        "order_template.product",
        "did you mean 'products'?",
    ),
    (
        "billing-missing",
        delete_path("billing_address"),
        "order_template.billing_address",
        "missing",
    ),
    (
        "billing-not-object",
        set_path("billing_address", "40 Harbour Road"),
        "order_template.billing_address",
        "must be a JSON object, not a string",
    ),
    (
        "zip-missing",
        delete_path("billing_address.zip"),
        "order_template.billing_address.zip",
        "missing",
    ),
    (
        "zip-short",
        set_path("billing_address.zip", "9"),
        "order_template.billing_address.zip",
        "at least 2 characters",
    ),
    (
        "first-name-missing",
        delete_path("billing_address.first_name"),
        "order_template.billing_address.first_name",
        "missing",
    ),
    (
        "street-blank",
        set_path("billing_address.street_1", "  "),
        "order_template.billing_address.street_1",
        "must not be empty",
    ),
    (
        "city-number",
        set_path("billing_address.city", 97201),
        "order_template.billing_address.city",
        "must be a string, not a number",
    ),
    (
        "email-missing",
        delete_path("billing_address.email"),
        "order_template.billing_address.email",
        "missing",
    ),
    (
        "email-invalid",
        set_path("billing_address.email", "mara at example.com"),
        "order_template.billing_address.email",
        "invalid email address 'mara at example.com'",
    ),
    (
        "country-missing",
        delete_path("billing_address.country", "billing_address.country_iso2"),
        "order_template.billing_address.country_iso2",
        "give country_iso2",
    ),
    (
        "country-iso2-three-letters",
        set_path("billing_address.country_iso2", "USA"),
        "order_template.billing_address.country_iso2",
        "invalid country code 'USA'",
    ),
    (
        "billing-state-null",
        set_path("billing_address.state", None),
        "order_template.billing_address.state",
        "is null",
    ),
    (
        "billing-unknown-field",
        set_path("billing_address.postcode", "97201"),
        "order_template.billing_address.postcode",
        "unknown field",
    ),
    (
        "shipping-method-on-billing",
        set_path("billing_address.shipping_method", "Flat Rate"),
        "order_template.billing_address.shipping_method",
        "unknown field",
    ),
    (
        "shipping-state-null",
        set_path("shipping_addresses.0.state", None),
        "order_template.shipping_addresses[0].state",
        "is null",
    ),
    (
        "shipping-zip-missing",
        delete_path("shipping_addresses.0.zip"),
        "order_template.shipping_addresses[0].zip",
        "missing",
    ),
    (
        "shipping-not-array",
        set_path("shipping_addresses", {"city": "Salem"}),
        "order_template.shipping_addresses",
        "must be a JSON array, not an object",
    ),
    (
        "products-missing",
        delete_path("products"),
        "order_template.products",
        "at least 1 product",
    ),
    (
        "products-empty",
        set_path("products", []),
        "order_template.products",
        "at least 1 product",
    ),
    (
        "products-object",
        set_path("products", {"name": "Box"}),
        "order_template.products",
        "must be a JSON array",
    ),
    (
        "product-not-object",
        set_path("products.1", "Filter Papers"),
        "order_template.products[1]",
        "must be a JSON object",
    ),
    (
        "product-without-id-or-name",
        delete_path("products.1.name"),
        "order_template.products[1]",
        "product_id (a catalog product) or name (a custom line)",
    ),
    (
        "name-empty",
        set_path("products.1.name", ""),
        "order_template.products[1].name",
        "must not be empty",
    ),
    (
        "name-too-long",
        set_path("products.1.name", "x" * 251),
        "order_template.products[1].name",
        "at most 250",
    ),
    (
        "quantity-zero",
        set_path("products.1.quantity", 0),
        "order_template.products[1].quantity",
        "must be 1 or more, not 0",
    ),
    (
        "quantity-string",
        set_path("products.1.quantity", "3"),
        "order_template.products[1].quantity",
        "must be a whole number, not a string",
    ),
    (
        "quantity-fraction",
        set_path("products.1.quantity", Decimal("1.5")),
        "order_template.products[1].quantity",
        "must be a whole number, not 1.5",
    ),
    (
        "quantity-bool",
        set_path("products.1.quantity", True),
        "order_template.products[1].quantity",
        "not a boolean",
    ),
    (
        "quantity-missing",
        delete_path("products.1.quantity"),
        "order_template.products[1].quantity",
        "missing",
    ),
    (
        "custom-price-inc-missing",
        delete_path("products.1.price_inc_tax"),
        "order_template.products[1].price_inc_tax",
        "both price_inc_tax and price_ex_tax",
    ),
    (
        "custom-price-ex-missing",
        delete_path("products.1.price_ex_tax"),
        "order_template.products[1].price_ex_tax",
        "both price_inc_tax and price_ex_tax",
    ),
    (
        "catalog-price-inc-missing",
        delete_path("products.2.price_inc_tax"),
        "order_template.products[2].price_inc_tax",
        "both price_inc_tax and price_ex_tax",
    ),
    (
        "catalog-price-ex-null",
        set_path("products.2.price_ex_tax", None),
        "order_template.products[2].price_ex_tax",
        "both price_inc_tax and price_ex_tax",
    ),
    (
        "price-zero",
        set_path("products.1.price_inc_tax", "0.00"),
        "order_template.products[1].price_inc_tax",
        "must be more than 0",
    ),
    (
        "price-negative",
        set_path("products.1.price_ex_tax", "-4.00"),
        "order_template.products[1].price_ex_tax",
        "'-4.00': it must not be negative",
    ),
    (
        "price-three-decimals",
        set_path("products.1.price_inc_tax", "4.405"),
        "order_template.products[1].price_inc_tax",
        "'4.405': USD amounts have at most 2 decimal places",
    ),
    (
        "price-not-number",
        set_path("products.0.price_ex_tax", "twenty"),
        "order_template.products[0].price_ex_tax",
        "'twenty'",
    ),
    (
        "inc-below-ex",
        set_path("products.1.price_inc_tax", "3.99"),
        "order_template.products[1].price_inc_tax",
        "3.99 is less than price_ex_tax 4.00",
    ),
    (
        "product-id-zero",
        set_path("products.2.product_id", 0),
        "order_template.products[2].product_id",
        "must be 1 or more",
    ),
    (
        "product-id-string",
        set_path("products.2.product_id", "118"),
        "order_template.products[2].product_id",
        "must be a whole number, not a string",
    ),
    (
        "variant-id-negative",
        set_path("products.2.variant_id", -1),
        "order_template.products[2].variant_id",
        "must be 1 or more",
    ),
    (
        "option-value-number",
        set_path("products.2.product_options.0.value", 34),
        "order_template.products[2].product_options[0].value",
        "must be a string",
    ),
    (
        "catalog-sku",
        set_path("products.2.sku", "BOX-M"),
        "order_template.products[2].sku",
        "unknown field",
    ),
    (
        "custom-wrapping-cost",
        set_path("products.0.wrapping_cost_inc_tax", "2.00"),
        "order_template.products[0].wrapping_cost_inc_tax",
        "unknown field",
    ),
    (
        "custom-variant-id",
        set_path("products.0.variant_id", 3),
        "order_template.products[0].variant_id",
        "unknown field",
    ),
    (
        "shipping-cost-alone",
        delete_path("shipping_cost_ex_tax"),
        "order_template.shipping_cost_ex_tax",
        "together with shipping_cost_inc_tax",
    ),
    (
        "shipping-cost-inc-below-ex",
        set_path("shipping_cost_inc_tax", "4.99"),
        "order_template.shipping_cost_inc_tax",
        "4.99 is less than shipping_cost_ex_tax 5.00",
    ),
    (
        "shipping-cost-negative",
        set_path("shipping_cost_ex_tax", -1),
        "order_template.shipping_cost_ex_tax",
        "must not be negative",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "message_part"),
    [case[1:] for case in BAD_TEMPLATES],
    ids=[case[0] for case in BAD_TEMPLATES],
)
def test_parse_rejects_template(
    mutate: Mutation, field: str, message_part: str
) -> None:
    raw = copy.deepcopy(valid_template())
    mutate(raw)

    with pytest.raises(InvalidInput) as caught:
        parse_order_template(raw, "USD", record=RECORD)

    assert caught.value.record == RECORD
    assert caught.value.field == field
    assert message_part in caught.value.message


@pytest.mark.parametrize("raw", [None, [], "template"], ids=["null", "array", "string"])
def test_parse_rejects_non_object(raw: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_order_template(raw, "USD", record=RECORD)

    assert caught.value.record == RECORD
    assert caught.value.field == "order_template"
    assert "must be a JSON object" in caught.value.message


def test_parse_jpy_rejects_decimals() -> None:
    raw = valid_template()
    raw["products"] = [
        {"name": "Tea", "quantity": 1, "price_inc_tax": 5.5, "price_ex_tax": 5}
    ]
    del raw["shipping_cost_inc_tax"]
    del raw["shipping_cost_ex_tax"]

    with pytest.raises(InvalidInput) as caught:
        parse_order_template(raw, "JPY", record=RECORD)

    assert caught.value.field == "order_template.products[0].price_inc_tax"
    assert (
        caught.value.message == "invalid amount 5.5: JPY amounts have no decimal places"
    )


def test_parse_accepts_country_name_only() -> None:
    raw = valid_template()
    del raw["billing_address"]["country_iso2"]

    template = parse_order_template(raw, "USD", record=RECORD)

    assert template.billing_address["country"] == "United States"
