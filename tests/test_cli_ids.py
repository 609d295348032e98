"""Ids and codes given to CLI commands must fit an INTEGER column.

PostgreSQL fails a query with a larger integer, and SQLite one beyond 64 bits,
so such a value is a usage error naming the argument, never a traceback.
"""

from __future__ import annotations

import pytest

from models import MAX_INTEGER
from tests.test_cli import run

TOO_LARGE = str(MAX_INTEGER + 1)
HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    "arguments",
    [
        ("cycles", "show", HUGE),
        ("cycles", "retry", TOO_LARGE),
        ("cycles", "approve", TOO_LARGE),
        ("cycles", "skip", HUGE),
        ("subscriptions", "cancel", HUGE),
        ("failures", "--code", HUGE),
    ],
    ids=["show", "retry", "approve", "skip", "cancel", "failures-code"],
)
def test_oversized_id_is_usage_error(
    database_url: str, arguments: tuple[str, ...]
) -> None:
    result = run(database_url, *arguments)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert str(MAX_INTEGER) in result.output


def test_largest_id_is_looked_up(database_url: str) -> None:
    result = run(database_url, "cycles", "show", str(MAX_INTEGER))

    assert result.exit_code == 1, result.output
    assert f"cycle {MAX_INTEGER} not found" in result.output
