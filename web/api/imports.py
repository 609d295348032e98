"""POST /api/v1/subscriptions/import: many subscriptions, all or nothing.

The body is read as a stream, record by record, in one of three formats chosen
by Content-Type: a JSON array (application/json), JSON lines
(application/x-ndjson) or CSV with a header row (text/csv). Every record is
validated and added inside one transaction. The transaction is committed only
when no record had an error. Otherwise it is rolled back, and the response lists
every bad record and field.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import IO

from flask import Response, jsonify, request

from rebill.errors import InvalidInput, InvalidInputFile
from rebill.subscription_input import RECORD_FIELDS, parse_subscription_or_errors
from rebill.subscriptions import add_subscriptions
from web.api import api
from web.api.auth import actor, current_key
from web.api.errors import ApiProblem, invalid
from web.app import db, now
from web.audit import record_audit

logger = logging.getLogger(__name__)

Entry = tuple[str, object]  # (label, record or the InvalidInput that replaced it)

# Records validated between two inserts; bounds the memory an import needs.
BATCH_SIZE = 500
# Reading stops after this many errors, and the response message mentions it.
MAX_ERRORS = 1000
# Largest single record of a JSON array, so a body without a closing bracket
# cannot fill the memory.
MAX_RECORD_CHARS = 1_048_576
CHUNK_CHARS = 65_536
SOURCE = "import"
_DIGITS = re.compile(r"[0-9]+")


@api.post("/subscriptions/import")
def import_subscriptions() -> tuple[Response, int]:
    entries = _entries_for(request.mimetype)
    result = _Import()
    try:
        for label, record in entries:
            result.take(label, record)
            if len(result.errors) >= MAX_ERRORS:
                result.truncated = True
                break
        result.flush()
    except UnicodeDecodeError as error:
        db().rollback()
        raise ApiProblem(400, f"body is not UTF-8 text: {error.reason}") from None
    if result.errors:
        db().rollback()
        problem = invalid(result.errors, with_record=True)
        if result.truncated:
            problem.message += f"; reading stopped after {MAX_ERRORS} errors"
        raise problem
    if not result.ids:
        raise ApiProblem(422, "the body contains no records")
    _audit(len(result.ids))
    db().commit()
    logger.info(
        "store %s: %d subscription(s) imported through %s",
        current_key().store.store_hash,
        len(result.ids),
        actor(),
    )
    return jsonify(imported=len(result.ids), ids=result.ids), 201


class _Import:
    """Validated records waiting for insertion, the ids added, and every error."""

    def __init__(self) -> None:
        self.store = current_key().store
        self.pending: list[tuple[str, object]] = []
        self.ids: list[int] = []
        self.errors: list[InvalidInput] = []
        self.references: dict[str, str] = {}
        self.truncated = False

    def take(self, label: str, record: object) -> None:
        if isinstance(record, InvalidInput):
            self.errors.append(record)
            return
        if isinstance(record, dict):
            if record.get("store", self.store.store_hash) != self.store.store_hash:
                self.errors.append(
                    InvalidInput(label, "store", "must be omitted or this key's store")
                )
                return
            record = {**record, "store": self.store.store_hash}
        spec, errors = parse_subscription_or_errors(
            record, label=label, default_currency=self.store.currency
        )
        self.errors.extend(errors)
        if spec is None:
            return
        if spec.reference is not None:
            first = self.references.setdefault(spec.reference, label)
            if first != label:
                self.errors.append(
                    InvalidInput(
                        label,
                        "reference",
                        f"duplicate reference {spec.reference!r}: {first} uses it too",
                    )
                )
                return
        self.pending.append((label, spec))
        if len(self.pending) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        """Insert the pending records; the transaction stays open."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        try:
            added = add_subscriptions(db(), batch, now(), source=SOURCE)  # type: ignore[arg-type]
        except InvalidInputFile as error:
            self.errors.extend(error.errors)
            return
        self.ids.extend(subscription.id for subscription in added)


def _audit(count: int) -> None:
    record_audit(
        db(),
        now(),
        actor=actor(),
        action="subscription.import",
        store_id=current_key().store_id,
        detail=f"{count} subscription(s)",
    )


def _entries_for(mimetype: str) -> Iterator[Entry]:
    if mimetype == "application/json":
        return _json_array_entries(_text_stream())
    if mimetype in ("application/x-ndjson", "application/jsonl"):
        return _json_line_entries(_text_stream())
    if mimetype == "text/csv":
        return _csv_entries(_text_stream())
    raise ApiProblem(
        415,
        "unsupported Content-Type: use application/json (an array), "
        "application/x-ndjson (one object per line) or text/csv",
    )


def _text_stream() -> IO[str]:
    # utf-8-sig drops the byte order mark that spreadsheet exports often add.
    raw = io.BufferedReader(request.stream)  # type: ignore[arg-type, type-var]
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _loads(text: str) -> object:
    return json.loads(
        text, parse_float=Decimal, object_pairs_hook=_object_without_duplicates
    )


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # json.loads would keep the last of two equal keys and drop the other value.
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r} in one JSON object")
        result[key] = value
    return result


def _json_line_entries(stream: IO[str]) -> Iterator[Entry]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        label = f"line {number}"
        try:
            yield label, _loads(line)
        except ValueError as error:
            yield label, InvalidInput(label, "json", f"invalid JSON: {error}")


def _csv_entries(stream: IO[str]) -> Iterator[Entry]:
    reader = csv.DictReader(stream)
    unknown = [name for name in reader.fieldnames or [] if name not in RECORD_FIELDS]
    if not reader.fieldnames or unknown:
        detail = ", ".join(repr(name) for name in unknown) or "none"
        raise ApiProblem(
            422,
            "invalid CSV header",
            [
                InvalidInput(
                    "line 1",
                    "header",
                    f"unknown or missing columns ({detail}); use the field names "
                    "of a subscription: " + ", ".join(sorted(RECORD_FIELDS)),
                )
            ],
            with_record=True,
        )
    for row in reader:
        label = f"line {reader.line_num}"
        yield label, _csv_record(label, row)


def _csv_record(label: str, row: dict[str, str | None]) -> object:
    """Turn a CSV row into a record: empty cells are absent, JSON cells parsed."""
    if None in row:
        return InvalidInput(label, "row", "more cells than header columns")
    record: dict[str, object] = {}
    for name, cell in row.items():
        if cell is None or cell == "":
            continue
        record[name] = cell
    customer_id = record.get("customer_id")
    # Only ASCII digits: str.isdigit() also accepts "²", which int() rejects.
    if isinstance(customer_id, str) and _DIGITS.fullmatch(customer_id.strip()):
        record["customer_id"] = int(customer_id)
    template = record.get("order_template")
    if isinstance(template, str):
        try:
            record["order_template"] = _loads(template)
        except ValueError as error:
            return InvalidInput(label, "order_template", f"invalid JSON: {error}")
    return record


def _json_array_entries(stream: IO[str]) -> Iterator[Entry]:
    reader = _ArrayReader(stream)
    for number, (value, error) in enumerate(reader.items(), 1):
        label = f"record {number}"
        if error is not None:
            yield label, InvalidInput(label, "json", error)
        else:
            yield label, value


class _ArrayReader:
    """Read the items of one JSON array from a text stream, a chunk at a time."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.buffer = ""
        self.position = 0
        self.ended = False
        # Duplicate keys found while decoding the current value.
        self.duplicates: list[str] = []
        self.decoder = json.JSONDecoder(
            parse_float=Decimal, object_pairs_hook=self._note_duplicates
        )

    def items(self) -> Iterator[tuple[object, str | None]]:
        self._expect("[")
        if self._peek() == "]":
            self.position += 1
        else:
            yield from self._values()
        if self._peek() != "":
            raise ApiProblem(400, "invalid JSON: data after the closing ']'")

    def _values(self) -> Iterator[tuple[object, str | None]]:
        while True:
            yield self._value()
            separator = self._peek()
            self.position += 1
            if separator == "]":
                return
            if separator != ",":
                raise ApiProblem(
                    400, "invalid JSON: expected ',' or ']' between array items"
                )

    def _value(self) -> tuple[object, str | None]:
        """Decode the next value, reading more input while it is incomplete."""
        self._peek()
        while True:
            self.duplicates.clear()
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.position)
            except ValueError as error:
                if self._read_more():
                    continue
                raise ApiProblem(400, f"invalid JSON in the array: {error}") from None
            if end < len(self.buffer) or not self._read_more():
                self.position = end
                if self.duplicates:
                    return None, self.duplicates[0]
                return value, None

    def _note_duplicates(self, pairs: list[tuple[str, object]]) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, value in pairs:
            if key in result:
                self.duplicates.append(f"duplicate key {key!r} in one JSON object")
            result[key] = value
        return result

    def _peek(self) -> str:
        """Skip whitespace and return the next character, or "" at the end."""
        while True:
            while (
                self.position < len(self.buffer)
                and self.buffer[self.position].isspace()
            ):
                self.position += 1
            if self.position < len(self.buffer):
                return self.buffer[self.position]
            if not self._read_more():
                return ""

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise ApiProblem(
                400, f"invalid JSON: expected an array starting with {char!r}"
            )
        self.position += 1

    def _read_more(self) -> bool:
        if self.ended:
            return False
        chunk = self.stream.read(CHUNK_CHARS)
        if not chunk:
            self.ended = True
            return False
        self.buffer = self.buffer[self.position :] + chunk
        self.position = 0
        if len(self.buffer) > MAX_RECORD_CHARS:
            raise ApiProblem(
                413,
                f"a record of the array is longer than {MAX_RECORD_CHARS} characters",
            )
        return True
