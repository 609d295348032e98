"""Checks shared by the parsers of merchant input (subscriptions, order templates).

Each check raises InvalidInput naming the record and the field path, such as
"order_template.products[0].quantity", and describes wrong values in JSON
terms (object, array, string, number, boolean, null) because merchants write
JSON.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from decimal import Decimal
from urllib.parse import urlsplit

from rebill.errors import InvalidInput

# Unicode's control characters (category Cc): C0, DEL and C1. PostgreSQL cannot
# store NUL in text, and none of them belongs in a name, an id or an address.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def json_type_name(value: object) -> str:
    """Return the JSON name of a value's type with its article ("an array")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def child_path(parent: str, key: str | int) -> str:
    """Return the path of a member (`parent.key`) or of an array item (`parent[3]`)."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if not parent:
        return key
    return f"{parent}.{key}"


def require_object(value: object, *, record: str, field: str) -> Mapping[str, object]:
    """Return `value` when it is a JSON object, else raise InvalidInput."""
    if not isinstance(value, Mapping):
        raise InvalidInput(
            record, field, f"must be a JSON object, not {json_type_name(value)}"
        )
    return value


def require_list(value: object, *, record: str, field: str) -> list[object]:
    """Return `value` as a list when it is a JSON array, else raise InvalidInput."""
    if not isinstance(value, list | tuple):
        raise InvalidInput(
            record, field, f"must be a JSON array, not {json_type_name(value)}"
        )
    return list(value)


def reject_unknown_keys(
    mapping: Mapping[str, object],
    allowed: Collection[str],
    *,
    record: str,
    path: str,
) -> None:
    """Raise InvalidInput for the first key of `mapping` that is not in `allowed`.

    The message suggests the closest allowed key when one looks like a typo, and
    lists the allowed keys otherwise.
    """
    for key in mapping:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), list(allowed), n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = "allowed fields are " + ", ".join(sorted(allowed))
        raise InvalidInput(record, child_path(path, str(key)), f"unknown field: {hint}")


def require_string(
    value: object,
    *,
    record: str,
    field: str,
    min_length: int = 1,
    max_length: int | None = None,
) -> str:
    """Return `value` when it is a string that fits the limits, else raise InvalidInput.

    The string needs at least `min_length` non-blank characters, at most
    `max_length` characters in all, and no control character (see
    reject_control_characters).
    """
    if not isinstance(value, str):
        raise InvalidInput(
            record, field, f"must be a string, not {json_type_name(value)}"
        )
    reject_control_characters(value, record=record, field=field)
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(
            record,
            field,
            f"is {len(value)} characters long: at most {max_length} are allowed",
        )
    if len(value.strip()) < min_length:
        if min_length == 1:
            raise InvalidInput(record, field, "must not be empty")
        raise InvalidInput(
            record,
            field,
            f"{value!r} is too short: it needs at least {min_length} characters",
        )
    return value


def reject_control_characters(text: str, *, record: str, field: str) -> str:
    """Return `text`, or raise InvalidInput if it contains a control character.

    The message gives the first one's code point and 1-based position, never
    the text itself, which may be a secret such as an instrument token.
    """
    found = _CONTROL_CHARACTER.search(text)
    if found is None:
        return text
    raise InvalidInput(
        record,
        field,
        f"contains the control character U+{ord(found.group()):04X} at character "
        f"{found.start() + 1}: remove it",
    )


def require_http_url(
    value: object, *, record: str, field: str, max_length: int | None = None
) -> str:
    """Return `value` if it is an http(s) URL with a host, else raise InvalidInput.

    A query or fragment is rejected too, because request paths are appended to
    the URL.
    """
    url = require_string(value, record=record, field=field, max_length=max_length)
    if not _is_http_url(url):
        raise InvalidInput(
            record,
            field,
            f"invalid URL {url!r}: use http:// or https:// and a host, such as "
            "https://api.bigcommerce.com",
        )
    return url


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises ValueError unless the port is a number 0-65535
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.query
        and not parts.fragment
        and not any(character.isspace() for character in url)
    )


def require_positive_int(
    value: object, *, record: str, field: str, maximum: int | None = None
) -> int:
    """Return `value` when it is an integer of at least 1, else raise InvalidInput.

    Booleans and numbers with a fraction part, such as 2.0, are rejected, and
    so is a value above `maximum` when one is given.
    """
    if isinstance(value, float | Decimal):
        raise InvalidInput(record, field, f"must be a whole number, not {value}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            record, field, f"must be a whole number, not {json_type_name(value)}"
        )
    if value < 1:
        raise InvalidInput(record, field, f"must be 1 or more, not {value}")
    if maximum is not None and value > maximum:
        raise InvalidInput(record, field, f"must be at most {maximum}, not {value}")
    return value
