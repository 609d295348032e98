"""Logging set-up for the entry points, renewal ids on log lines, and redaction.

Library modules only call `logging.getLogger(__name__)`; the CLI, the worker
boot and the web app call `configure()`. Two things happen on the handler, so
they apply to every logger, rebill's, urllib3's and Celery's alike:

- `IdsFilter` copies the store, subscription, cycle and order ids bound with
  `bound_ids()`/`bind_ids()` onto each record, for the JSON format's fields.
- `RedactingFilter` replaces secrets in the final text of each record: API
  tokens registered with `register_secret()`, and anything shaped like a PAT, an
  instrument token, a card number or an auth header. Code must still never log a
  secret; this filter is the second line of defence.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

ID_NAMES = ("store", "subscription", "cycle", "order")
REDACTED = "[redacted]"
# Shorter values are not registered: replacing them would mangle ordinary text.
MIN_SECRET_LENGTH = 8

# None outside any bound_ids() block.
_ids: ContextVar[Mapping[str, object] | None] = ContextVar(
    "rebill_log_ids", default=None
)


@contextmanager
def bound_ids(**ids: object) -> Iterator[None]:
    """Add ids to every log line written in this block (and its `bind_ids` calls)."""
    token = _ids.set({**(_ids.get() or {}), **ids})
    try:
        yield
    finally:
        _ids.reset(token)


def bind_ids(**ids: object) -> None:
    """Add ids learned inside a `bound_ids` block, until that block ends.

    Outside any block this does nothing, so ids never stick to the later log
    lines of a thread.
    """
    current = _ids.get()
    if current is not None:
        _ids.set({**current, **ids})


def current_ids(**explicit: object) -> dict[str, object]:
    """Return the bound ids overlaid with `explicit` ones that are not None."""
    bound = _ids.get() or {}
    merged = {**bound, **{k: v for k, v in explicit.items() if v is not None}}
    return {name: merged[name] for name in ID_NAMES if merged.get(name) is not None}


def ids_prefix(**explicit: object) -> str:
    """Return the start of a log line, e.g. 'store abc subscription 3 cycle 7'."""
    ids = current_ids(**explicit)
    return " ".join(f"{name} {value}" for name, value in ids.items()) or "-"


class IdsFilter(logging.Filter):
    """Copy the bound ids onto each record as attributes (None when unbound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        for name in ID_NAMES:
            if not hasattr(record, name):
                setattr(record, name, ids.get(name))
        return True


class Redactor:
    """Replace secrets in text: registered values plus secret-shaped patterns."""

    PATTERNS = (
        # A PAT or any other JWT: three base64url parts, the first two JSON.
        re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+"),
        # Stored instrument tokens are 64 hex characters.
        re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])"),
        # Fernet ciphertext of a stored API token.
        re.compile(r"gAAAAA[\w-]{20,}=*"),
    )
    # Header or field names whose value is a secret, in "name: value",
    # "name=value" and "'name': 'value'" forms.
    NAMED = re.compile(
        r"(?i)((?:x-auth-token|access_token|authorization|instrument_token|"
        r"secret_key|token)['\"]?\s*[:=]\s*['\"]?(?:PAT |Bearer )?)"
        r"[^\s'\",;}]+"
    )
    # 13 to 19 digits, optionally grouped by spaces or dashes, from the card
    # networks' ranges (2-6); checked with Luhn before being replaced.
    CARD = re.compile(r"(?<![\d.])[2-6](?:[ -]?\d){12,18}(?![\d.])")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._registered: re.Pattern[str] | None = None

    def register(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret in self._secrets:
                return
            self._secrets.add(secret)
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._registered = re.compile("|".join(map(re.escape, alternatives)))

    def redact(self, text: str) -> str:
        registered = self._registered
        if registered is not None:
            text = registered.sub(REDACTED, text)
        for pattern in self.PATTERNS:
            text = pattern.sub(REDACTED, text)
        text = self.NAMED.sub(lambda match: match.group(1) + REDACTED, text)
        return self.CARD.sub(_redact_card, text)


def _redact_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return REDACTED if luhn_valid(digits) else match.group(0)


def luhn_valid(digits: str) -> bool:
    """Return whether a digit string passes the Luhn check card numbers carry."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


redactor = Redactor()


def register_secret(secret: str) -> None:
    """Redact `secret` from every log line and Sentry event of this process."""
    redactor.register(secret)


class RedactingFilter(logging.Filter):
    """Replace secrets in a record's message, exception and stack text.

    The message is formatted here and the record's arguments dropped, so every
    formatter afterwards sees only redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the renewal ids as separate fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        for name in ID_NAMES:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def make_handler(log_format: str = "text", stream: object = None) -> logging.Handler:
    """Build a stream handler with the ids and redacting filters attached."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if log_format.lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(IdsFilter())
    handler.addFilter(RedactingFilter())
    return handler


def configure(level: str = "INFO", log_format: str = "text") -> None:
    """Send every logger's records to stderr through one filtered handler."""
    root = logging.getLogger()
    root.handlers[:] = [make_handler(log_format)]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
