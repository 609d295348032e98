from __future__ import annotations

from datetime import date

import pytest

from rebill.client import StoredInstrument
from worker.instruments import choose_instrument, is_expired

TODAY = date(2026, 12, 4)


def card(token: str, *, default: bool = False, year: int = 2030, month: int = 12):
    return StoredInstrument(
        payment_method_id="stripe.card",
        type="stored_card",
        token=token,
        is_default=default,
        brand="VISA",
        last_4=token[-4:],
        expiry_month=month,
        expiry_year=year,
    )


PAYPAL = StoredInstrument("braintree.paypal", "stored_paypal_account", "p" * 64)


def test_preferred_instrument_wins_when_offered() -> None:
    offered = [card("a" * 64, default=True), card("b" * 64)]
    choice = choose_instrument(
        offered, preferred_method="stripe.card", preferred_token="b" * 64, today=TODAY
    )
    assert choice.instrument is offered[1]
    assert choice.reason == "preferred instrument"


def test_default_instrument_when_preferred_is_gone() -> None:
    offered = [PAYPAL, card("a" * 64, default=True)]
    choice = choose_instrument(
        offered, preferred_method=None, preferred_token="z" * 64, today=TODAY
    )
    assert choice.instrument is offered[1]


def test_first_usable_when_no_default() -> None:
    offered = [card("a" * 64, year=2020), PAYPAL]
    choice = choose_instrument(
        offered, preferred_method=None, preferred_token=None, today=TODAY
    )
    assert choice.instrument is PAYPAL


def test_preferred_token_under_other_method_is_not_used() -> None:
    offered = [card("a" * 64), card("b" * 64, default=True)]
    choice = choose_instrument(
        offered, preferred_method="adyen.card", preferred_token="a" * 64, today=TODAY
    )
    assert choice.instrument is offered[1]


def test_expired_default_card_is_skipped() -> None:
    offered = [card("a" * 64, default=True, year=2026, month=11), card("b" * 64)]
    choice = choose_instrument(
        offered, preferred_method=None, preferred_token=None, today=TODAY
    )
    assert choice.instrument is offered[1]


def test_no_instrument_gives_reason() -> None:
    choice = choose_instrument(
        [], preferred_method=None, preferred_token=None, today=TODAY
    )
    assert choice.instrument is None
    assert "no stored instrument" in choice.reason


def test_only_expired_instruments_gives_reason() -> None:
    choice = choose_instrument(
        [card("a" * 64, year=2020)],
        preferred_method=None,
        preferred_token=None,
        today=TODAY,
    )
    assert choice.instrument is None
    assert "expired" in choice.reason


@pytest.mark.parametrize(
    ("month", "year", "expired"),
    [(12, 2026, False), (11, 2026, True), (1, 2027, False), (12, 2025, True)],
    ids=["this-month", "last-month", "next-year", "last-year"],
)
def test_card_valid_through_end_of_expiry_month(month, year, expired) -> None:
    assert is_expired(card("a" * 64, month=month, year=year), TODAY) is expired


def test_instrument_repr_hides_token() -> None:
    assert "a" * 64 not in repr(card("a" * 64))
