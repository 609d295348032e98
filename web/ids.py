"""Integers taken from URLs: row ids in paths and integer query filters.

A number larger than an INTEGER column fails the query on PostgreSQL
("integer out of range"), so such a value must never reach the database.
In a path it makes the request a 404, as for any missing row.
"""

from __future__ import annotations

import re

from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from models import MAX_INTEGER

_ASCII_DIGITS = re.compile(r"[0-9]+")


class RowIdConverter(IntegerConverter):
    """URL converter `<id:name>` for a row id, at most the largest INTEGER value.

    A larger number raises NotFound at once. Failing the match instead would
    make werkzeug respond 405 when a rule with another method has the same path.
    """

    def to_python(self, value: str) -> int:
        row_id: int = super().to_python(value)
        if row_id > MAX_INTEGER:
            raise NotFound(f"not found: no id is larger than {MAX_INTEGER}")
        return row_id


def integer_filter(text: str) -> int | None:
    """Return `text` as a filter value for an INTEGER column, or None if it is not one.

    Only ASCII digits count, so "²", which str.isdigit() accepts and int()
    rejects, is None.
    """
    text = text.strip()
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_INTEGER else None
