"""Encryption at rest of store API tokens, with Fernet keys from REBILL_SECRET_KEY.

REBILL_SECRET_KEY contains one or more Fernet keys, comma-separated. The first key
encrypts; every key decrypts (cryptography's MultiFernet). A rotation is: put a
new key first, restart every role, run `rebill keys rotate`, then remove the old
key. Each process installs its keyring once at start-up (`install_keyring`), and
the `EncryptedText` column type encrypts and decrypts with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from rebill.errors import ConfigurationError
from rebill.settings import check_secret_keys, env_name

logger = logging.getLogger(__name__)

SECRET_KEY_VARIABLE = env_name("secret_key")
# Every Fernet token starts with its version byte 0x80, base64-encoded as "gA".
FERNET_PREFIX = "gAAAAA"


class DecryptionFailed(ConfigurationError):
    """No key of REBILL_SECRET_KEY decrypts a stored value."""


class Keyring:
    """The keys of REBILL_SECRET_KEY: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigurationError(f"{SECRET_KEY_VARIABLE} contains no key")
        self.size = len(keys)
        self._primary = Fernet(keys[0])
        self._all = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_setting(cls, value: str) -> Keyring:
        """Build the keyring from REBILL_SECRET_KEY, or raise ConfigurationError."""
        if not value.strip():
            raise ConfigurationError(missing_key_message())
        check_secret_keys(value)
        return cls([key.strip() for key in value.split(",")])

    def encrypt(self, plaintext: str) -> str:
        return self._primary.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt with any key, raising DecryptionFailed if none fits."""
        try:
            return self._all.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise DecryptionFailed(
                f"no key in {SECRET_KEY_VARIABLE} decrypts a stored API token: set "
                "the key the tokens were encrypted with (keep it after a new key "
                "until `rebill keys rotate` has run)"
            ) from None

    def encrypted_with_primary(self, ciphertext: str) -> bool:
        """Return whether the first key alone decrypts `ciphertext`."""
        try:
            self._primary.decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True


def generate_key() -> str:
    """Return a new random Fernet key (32 bytes, url-safe base64)."""
    return Fernet.generate_key().decode()


def missing_key_message() -> str:
    return (
        f"{SECRET_KEY_VARIABLE} is not set: store API tokens are encrypted at rest "
        "with it. Set it to the key the tokens were encrypted with, or, for a new "
        "database, to the output of `rebill keys generate`"
    )


_keyring: Keyring | None = None


def install_keyring(keyring: Keyring | None) -> None:
    """Make `keyring` the one EncryptedText columns use in this process."""
    global _keyring
    _keyring = keyring


def active_keyring() -> Keyring:
    """Return the installed keyring, or raise ConfigurationError if none is."""
    if _keyring is None:
        raise ConfigurationError(missing_key_message())
    return _keyring


class EncryptedText(sa.types.TypeDecorator[str]):
    """Text encrypted with the process keyring before it reaches the database."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return active_keyring().encrypt(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return active_keyring().decrypt(value)


# The stores table seen without EncryptedText, for reading and writing ciphertext.
stores_table = sa.table(
    "stores",
    sa.column("id", sa.Integer),
    sa.column("store_hash", sa.String),
    sa.column("access_token", sa.Text),
)


@dataclass(frozen=True)
class StoredToken:
    store_id: int
    store_hash: str
    value: str


def stored_tokens(
    connection: sa.Connection, *, for_update: bool = False
) -> list[StoredToken]:
    """Read every store's token as stored, without decrypting it.

    `for_update` locks the rows until the transaction ends (PostgreSQL only).
    """
    query = sa.select(
        stores_table.c.id, stores_table.c.store_hash, stores_table.c.access_token
    ).order_by(stores_table.c.id)
    if for_update:
        query = query.with_for_update()
    rows = connection.execute(query)
    return [StoredToken(row.id, row.store_hash, row.access_token) for row in rows]


def decrypt_stored(keyring: Keyring, token: StoredToken) -> str:
    """Decrypt one store's token, naming the store if no key fits."""
    try:
        return keyring.decrypt(token.value)
    except DecryptionFailed:
        raise DecryptionFailed(
            f"no key in {SECRET_KEY_VARIABLE} decrypts the API token of store "
            f"{token.store_hash} (id {token.store_id}): set the key the tokens were "
            "encrypted with; after adding a new key, keep the old one until "
            "`rebill keys rotate` has run"
        ) from None


def rotate_tokens(connection: sa.Connection, keyring: Keyring) -> int:
    """Re-encrypt every store token under the first key; return how many.

    Every token is decrypted before anything is written, so a token that no key
    decrypts raises DecryptionFailed with nothing changed. The caller commits.
    """
    tokens = stored_tokens(connection, for_update=True)
    plaintexts = [decrypt_stored(keyring, token) for token in tokens]
    for token, plaintext in zip(tokens, plaintexts, strict=True):
        connection.execute(
            sa.update(stores_table)
            .where(stores_table.c.id == token.store_id)
            .values(access_token=keyring.encrypt(plaintext))
        )
    for token in stored_tokens(connection):
        if not keyring.encrypted_with_primary(token.value):
            raise DecryptionFailed(
                f"store {token.store_hash} (id {token.store_id}) is still not "
                "encrypted under the first key after the rotation; nothing was "
                "written"
            )
    logger.info("re-encrypted %d store token(s) under the first key", len(tokens))
    return len(tokens)


def looks_encrypted(value: str) -> bool:
    """Return whether `value` has the shape of a Fernet token."""
    return value.startswith(FERNET_PREFIX)
