"""Checks each role runs before it starts work.

A role whose database is not migrated, or whose REBILL_SECRET_KEY is missing or
cannot decrypt a stored API token, stops at start-up with one message saying
what to fix, instead of failing at its first charge.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from rebill.encryption import Keyring, decrypt_stored, stored_tokens
from rebill.errors import ConfigurationError
from rebill.logs import register_secret
from rebill.migrations import current_revisions, head_revisions
from rebill.runtime import Runtime
from rebill.settings import env_name

logger = logging.getLogger(__name__)


def check_ready(runtime: Runtime) -> None:
    """Raise ConfigurationError unless this role can start work."""
    keyring = Keyring.from_setting(runtime.settings.secret_key)
    check_schema(runtime)
    count = check_store_tokens(runtime, keyring)
    logger.info(
        "start-up checks passed: database at the newest revision, %d store "
        "token(s) decrypt",
        count,
    )


def check_schema(runtime: Runtime) -> None:
    """Raise ConfigurationError unless the database is at the newest revision."""
    try:
        with runtime.engine.connect() as connection:
            current = current_revisions(connection)
    except sa.exc.OperationalError as error:
        raise database_unreachable(runtime, error) from None
    expected = head_revisions()
    if current != expected:
        shown = ", ".join(sorted(current)) or "empty"
        raise ConfigurationError(
            f"the database is at revision {shown}, but this rebill needs "
            f"{', '.join(sorted(expected))}: run `rebill migrate`"
        )


def check_store_tokens(runtime: Runtime, keyring: Keyring) -> int:
    """Decrypt every store's API token; return how many there are.

    Each decrypted token is registered for redaction from logs and Sentry.
    """
    try:
        with runtime.engine.connect() as connection:
            tokens = stored_tokens(connection)
    except sa.exc.OperationalError as error:
        raise database_unreachable(runtime, error) from None
    for token in tokens:
        register_secret(decrypt_stored(keyring, token))
    return len(tokens)


def database_unreachable(
    runtime: Runtime, error: sa.exc.OperationalError
) -> ConfigurationError:
    url = runtime.settings.shown("database_url")
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return ConfigurationError(
        f"cannot reach the database at {url} ({env_name('database_url')}): {reason}"
    )
