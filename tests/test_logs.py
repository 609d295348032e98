from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from rebill import logs
from rebill.logs import REDACTED, Redactor, luhn_valid

INSTRUMENT_TOKEN = "3f" * 32
PAT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhYmMxMjN4eXoifQ.c2lnbmF0dXJlLXBhcnQ"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through rebill's handler into a string."""
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs")
    handler = logs.make_handler("text", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token {INSTRUMENT_TOKEN} used", INSTRUMENT_TOKEN),
        (f"minted {PAT}", PAT),
        ("Authorization: PAT abc.def.ghi", "abc.def.ghi"),
        ("{'X-Auth-Token': 'k3yk3yk3y'}", "k3yk3yk3y"),
        ("access_token=plain-secret-value", "plain-secret-value"),
        ("card 4242 4242 4242 4242 charged", "4242 4242 4242 4242"),
        ("card 4000-0000-0000-0002", "4000-0000-0000-0002"),
        ("stored gAAAAABnY2lwaGVydGV4dC1mb3ItdGVzdHM= here", "gAAAAABnY2lw"),
    ],
    ids=[
        "instrument-token",
        "pat",
        "authorization-header",
        "auth-token-dict",
        "named-field",
        "card-spaces",
        "card-dashes",
        "fernet",
    ],
)
def test_redactor_replaces_secret_shapes(text: str, secret: str) -> None:
    redacted = Redactor().redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 created",  # 13 digits, starts with 1: not a card range
        "cycle 4242424242424241 in 0.012 s",  # fails the Luhn check
        "POST create order -> 201 in 0.005 s",
        "store abc123xyz subscription 3 cycle 7 order 100: paid",
    ],
    ids=["order-id", "not-luhn", "request-line", "ids"],
)
def test_redactor_keeps_ordinary_text(text: str) -> None:
    assert Redactor().redact(text) == text


def test_registered_secret_is_replaced() -> None:
    redactor = Redactor()
    redactor.register("store-api-token-123")
    redactor.register("short")
    assert redactor.redact("a store-api-token-123 b") == f"a {REDACTED} b"
    assert redactor.redact("a short b") == "a short b"


def test_luhn_check() -> None:
    assert luhn_valid("4242424242424242")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4242424242424241")


def test_handler_redacts_arguments_and_tracebacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("charging with %s", INSTRUMENT_TOKEN)
    try:
        raise ValueError(f"bad PAT {PAT}")
    except ValueError:
        logger.exception("payment failed")
    output = stream.getvalue()
    assert INSTRUMENT_TOKEN not in output
    assert PAT not in output
    assert "ValueError: bad PAT [redacted]" in output


def test_bound_ids_prefix_and_reset() -> None:
    assert logs.ids_prefix(store="abc", order=None) == "store abc"
    with logs.bound_ids(cycle=7):
        logs.bind_ids(store="abc", subscription=3)
        assert logs.ids_prefix(order=12) == "store abc subscription 3 cycle 7 order 12"
    assert logs.ids_prefix() == "-"


def test_bind_ids_outside_a_block_does_nothing() -> None:
    logs.bind_ids(store="abc")
    assert logs.ids_prefix() == "-"


def test_json_format_has_ids_as_fields() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs.json")
    handler = logs.make_handler("json", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with logs.bound_ids(store="abc", cycle=7):
            logger.info("paid with %s", INSTRUMENT_TOKEN)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    entry = json.loads(stream.getvalue())
    assert entry["store"] == "abc"
    assert entry["cycle"] == 7
    assert "subscription" not in entry
    assert entry["level"] == "INFO"
    assert entry["logger"] == "tests.logs.json"
    assert entry["message"] == f"paid with {REDACTED}"
