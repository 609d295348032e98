"""The OpenAPI 3 document of the merchant API, built with apispec.

It is served at /api/v1/openapi.json without authentication and drives the
API's fuzz tests, so every route of web.api must appear here with its
responses.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Response, jsonify

from web.api import api

NULLABLE_STRING = {"type": "string", "nullable": True}
DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_DATE_TIME = {**DATE_TIME, "nullable": True}
ID_PARAMETER = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}

ADDRESS = {
    "type": "object",
    "description": "A V2 order address: first_name, last_name, street_1, city, "
    "state, zip, country, country_iso2, email and optional fields.",
    "additionalProperties": True,
}
PRODUCT = {
    "type": "object",
    "description": "A custom line (name, quantity, price_inc_tax, price_ex_tax) or "
    "a catalog line (product_id, quantity and both prices). Prices are decimal "
    "strings or numbers in the currency's unit.",
    "additionalProperties": True,
}
ORDER_TEMPLATE = {
    "type": "object",
    "required": ["billing_address", "products"],
    "properties": {
        "billing_address": ADDRESS,
        "products": {"type": "array", "items": PRODUCT, "minItems": 1},
        "shipping_addresses": {"type": "array", "items": ADDRESS},
        "shipping_cost_inc_tax": {"type": "string"},
        "shipping_cost_ex_tax": {"type": "string"},
    },
    "additionalProperties": False,
}
SUBSCRIPTION_FIELDS: dict[str, Any] = {
    "cron": {"type": "string", "example": "0 9 1 * *"},
    "timezone": {"type": "string", "example": "America/Chicago"},
    "currency": {"type": "string", "example": "USD"},
    "order_template": {"$ref": "#/components/schemas/OrderTemplate"},
    "reference": {**NULLABLE_STRING, "description": "Your id, unique per store."},
    "payment_method_id": {**NULLABLE_STRING, "example": "stripe.card"},
    "instrument_token": {
        **NULLABLE_STRING,
        "description": "Preferred stored instrument; never returned.",
    },
    "end_of_dunning_action": {
        "type": "string",
        "enum": ["pause", "skip", "cancel"],
        "nullable": True,
    },
}
NEW_SUBSCRIPTION = {
    "type": "object",
    "required": ["customer_id", "cron", "timezone", "order_template"],
    "properties": {
        "store": {"type": "string", "description": "Optional; must be the key's."},
        "customer_id": {"type": "integer", "minimum": 1},
        **SUBSCRIPTION_FIELDS,
        "first_billing_at": {**NULLABLE_DATE_TIME},
    },
    "additionalProperties": False,
}
SUBSCRIPTION_CHANGES = {
    "type": "object",
    "description": "Fields to change; null clears an optional field.",
    "properties": SUBSCRIPTION_FIELDS,
    "additionalProperties": False,
}
INSTRUMENT = {
    "type": "object",
    "required": ["payment_method_id", "instrument_token"],
    "properties": {
        "payment_method_id": SUBSCRIPTION_FIELDS["payment_method_id"],
        "instrument_token": SUBSCRIPTION_FIELDS["instrument_token"],
    },
    "additionalProperties": False,
}
SUBSCRIPTION = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "store": {"type": "string"},
        "reference": NULLABLE_STRING,
        "customer_id": {"type": "integer"},
        "status": {
            "type": "string",
            "enum": ["active", "paused", "past_due", "canceled"],
        },
        "cron": {"type": "string"},
        "timezone": {"type": "string"},
        "currency": {"type": "string"},
        "amount": {"type": "string"},
        "amount_minor": {"type": "integer"},
        "next_billing_at": DATE_TIME,
        "cancel_at": NULLABLE_DATE_TIME,
        "payment_method_id": NULLABLE_STRING,
        "has_instrument_token": {"type": "boolean"},
        "end_of_dunning_action": NULLABLE_STRING,
        "order_template": {"type": "object"},
        "created_at": DATE_TIME,
        "updated_at": DATE_TIME,
    },
}
ATTEMPT = {
    "type": "object",
    "properties": {
        "number": {"type": "integer"},
        "outcome": {"type": "string"},
        "started_at": DATE_TIME,
        "payment_sent_at": NULLABLE_DATE_TIME,
        "finished_at": NULLABLE_DATE_TIME,
        "http_status": {"type": "integer", "nullable": True},
        "error_code": {"type": "integer", "nullable": True},
        "message": NULLABLE_STRING,
        "payment_method_id": NULLABLE_STRING,
        "instrument_type": NULLABLE_STRING,
        "instrument_brand": NULLABLE_STRING,
        "instrument_last4": NULLABLE_STRING,
        "transaction_id": NULLABLE_STRING,
    },
}
CYCLE = {
    "type": "object",
    "description": "One renewal (billing cycle) of a subscription.",
    "properties": {
        "id": {"type": "integer"},
        "subscription_id": {"type": "integer"},
        "scheduled_at": DATE_TIME,
        "state": {"type": "string"},
        "order_id": {"type": "integer", "nullable": True},
        "currency": {"type": "string"},
        "amount": {"type": "string"},
        "amount_minor": {"type": "integer"},
        "attempt_count": {"type": "integer"},
        "decline_count": {"type": "integer"},
        "next_attempt_at": NULLABLE_DATE_TIME,
        "last_outcome": NULLABLE_STRING,
        "last_error_code": {"type": "integer", "nullable": True},
        "last_error_message": NULLABLE_STRING,
        "transaction_id": NULLABLE_STRING,
        "paid_at": NULLABLE_DATE_TIME,
        "created_at": DATE_TIME,
        "updated_at": DATE_TIME,
        "attempts": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/Attempt"},
        },
    },
}
ERROR = {
    "type": "object",
    "required": ["message", "errors"],
    "properties": {
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "record": {"type": "string"},
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _page_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": _ref(name)},
            "next_after": {"type": "integer", "nullable": True},
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "body is not valid JSON",
        401: "missing, invalid or revoked API key",
        404: "not found in the key's store",
        409: "not allowed in the subscription's status",
        413: "body too large",
        415: "unsupported Content-Type",
        422: "invalid fields, each named in errors",
    }
    return {
        str(status): _json(_ref("Error"), descriptions[status]) for status in statuses
    }


def _operation(
    summary: str,
    ok: tuple[int, dict[str, Any], str],
    *,
    errors: tuple[int, ...] = (401, 404),
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status, schema, description = ok
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {str(status): _json(schema, description), **_errors(*errors)},
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return operation


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID_PARAMETER}


PAGE_PARAMETERS = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 200},
        "page size, 50 by default",
    ),
    _query(
        "after",
        {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "next_after of the previous page",
    ),
]
BODY_ERRORS = (400, 401, 404, 409, 413, 415, 422)


def build_spec() -> APISpec:
    spec = APISpec(
        title="rebill merchant API",
        version="1",
        openapi_version="3.0.3",
        info={
            "description": "Create and manage subscriptions of one store. Send the "
            "store's API key as 'Authorization: Bearer <key>'."
        },
        servers=[{"url": "/api/v1"}],
    )
    spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer"})
    for name, schema in (
        ("OrderTemplate", ORDER_TEMPLATE),
        ("NewSubscription", NEW_SUBSCRIPTION),
        ("SubscriptionChanges", SUBSCRIPTION_CHANGES),
        ("Instrument", INSTRUMENT),
        ("Subscription", SUBSCRIPTION),
        ("Cycle", CYCLE),
        ("Attempt", ATTEMPT),
        ("Error", ERROR),
    ):
        spec.components.schema(name, schema)
    spec.options["security"] = [{"apiKey": []}]
    _add_paths(spec)
    return spec


def _add_paths(spec: APISpec) -> None:
    subscription = (200, _ref("Subscription"), "the subscription")
    subscription_id = [_path_id("subscription_id")]
    store = {
        "type": "object",
        "properties": {
            "store": {"type": "string"},
            "name": {"type": "string"},
            "currency": {"type": "string"},
            "timezone": {"type": "string"},
            "billing_paused": {"type": "boolean"},
            "billing_paused_reason": NULLABLE_STRING,
        },
    }
    spec.path(
        "/store",
        operations={
            "get": _operation(
                "The key's store", (200, store, "the store"), errors=(401,)
            )
        },
    )
    status_filter = _query(
        "status",
        {"type": "string", "enum": ["active", "paused", "past_due", "canceled"]},
        "only subscriptions in this status",
    )
    reference_filter = _query("reference", {"type": "string"}, "only this reference")
    spec.path(
        "/subscriptions",
        operations={
            "get": _operation(
                "List subscriptions",
                (200, _page_of("Subscription"), "a page of subscriptions"),
                errors=(401, 422),
                parameters=[*PAGE_PARAMETERS, status_filter, reference_filter],
            ),
            "post": _operation(
                "Create a subscription",
                (201, _ref("Subscription"), "the new subscription"),
                errors=(400, 401, 413, 415, 422),
                body=_ref("NewSubscription"),
            ),
        },
    )
    import_result = {
        "type": "object",
        "properties": {
            "imported": {"type": "integer"},
            "ids": {"type": "array", "items": {"type": "integer"}},
        },
    }
    import_operation = _operation(
        "Import subscriptions, all or nothing",
        (201, import_result, "every record was added"),
        errors=(400, 401, 413, 415, 422),
    )
    import_operation["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": _ref("NewSubscription")}
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
    spec.path("/subscriptions/import", operations={"post": import_operation})
    spec.path(
        "/subscriptions/{subscription_id}",
        operations={
            "get": _operation(
                "Read a subscription", subscription, parameters=subscription_id
            ),
            "patch": _operation(
                "Change a subscription",
                subscription,
                errors=BODY_ERRORS,
                parameters=subscription_id,
                body=_ref("SubscriptionChanges"),
            ),
        },
    )
    for action, summary, extra in (
        ("pause", "Pause renewals", []),
        ("resume", "Resume a paused subscription", []),
        ("skip-next", "Skip the next renewal", []),
        (
            "cancel",
            "Cancel now or at the end of the period",
            [
                _query(
                    "at",
                    {"type": "string", "enum": ["now", "period_end"]},
                    "now (the default) or period_end",
                )
            ],
        ),
    ):
        spec.path(
            f"/subscriptions/{{subscription_id}}/{action}",
            operations={
                "post": _operation(
                    summary,
                    subscription,
                    errors=(401, 404, 409, 422),
                    parameters=[*subscription_id, *extra],
                )
            },
        )
    spec.path(
        "/subscriptions/{subscription_id}/instrument",
        operations={
            "put": _operation(
                "Change the preferred stored instrument",
                subscription,
                errors=BODY_ERRORS,
                parameters=subscription_id,
                body=_ref("Instrument"),
            )
        },
    )
    preview = {
        "type": "object",
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "billing_at": DATE_TIME,
                        "currency": {"type": "string"},
                        "amount": {"type": "string"},
                        "amount_minor": {"type": "integer"},
                    },
                },
            }
        },
    }
    spec.path(
        "/subscriptions/{subscription_id}/preview",
        operations={
            "get": _operation(
                "Preview the next renewals",
                (200, preview, "dates and amounts"),
                errors=(401, 404, 422),
                parameters=[
                    *subscription_id,
                    _query(
                        "count",
                        {"type": "integer", "minimum": 1, "maximum": 24},
                        "3 by default",
                    ),
                ],
            )
        },
    )
    spec.path(
        "/subscriptions/{subscription_id}/cycles",
        operations={
            "get": _operation(
                "List a subscription's renewals",
                (200, _page_of("Cycle"), "a page of renewals"),
                errors=(401, 404, 422),
                parameters=[*subscription_id, *PAGE_PARAMETERS],
            )
        },
    )
    cycle_id = [_path_id("cycle_id")]
    spec.path(
        "/cycles/{cycle_id}",
        operations={
            "get": _operation(
                "Read a renewal with its attempts",
                (200, _ref("Cycle"), "the renewal"),
                parameters=cycle_id,
            )
        },
    )
    attempts = {
        "type": "object",
        "properties": {"data": {"type": "array", "items": _ref("Attempt")}},
    }
    spec.path(
        "/cycles/{cycle_id}/attempts",
        operations={
            "get": _operation(
                "List a renewal's charge attempts",
                (200, attempts, "the attempts, oldest first"),
                parameters=cycle_id,
            )
        },
    )


_DOCUMENT: dict[str, Any] | None = None


@api.get("/openapi.json")
def openapi_document() -> Response:
    global _DOCUMENT
    if _DOCUMENT is None:
        _DOCUMENT = build_spec().to_dict()
    return jsonify(_DOCUMENT)
