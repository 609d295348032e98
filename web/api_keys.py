"""Merchant API keys: create, find by the presented key, revoke.

A key reads `rbk_<8 hex>_<43 URL-safe characters>`. The part before the second
underscore is its prefix, stored in clear to name the key in listings and logs.
Only the SHA-256 of the whole key is stored, so the key is shown once, at
creation, and cannot be recovered from the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import ApiKey, Store
from rebill.errors import InvalidInput

KEY_SCHEME = "rbk"
# 32 random bytes give 256 bits, which makes guessing or brute-forcing the
# hash pointless.
SECRET_BYTES = 32


def generate_key() -> tuple[str, str]:
    """Return a new (prefix, key) pair; the key starts with the prefix."""
    prefix = f"{KEY_SCHEME}_{secrets.token_hex(4)}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"


def key_prefix(key: str) -> str:
    """Return the prefix of a key; the secret part may itself contain '_'."""
    return "_".join(key.split("_", 2)[:2])


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    session: Session, store_hash: str, now: datetime, *, label: str = ""
) -> tuple[ApiKey, str]:
    """Add a key for the store and return it with the clear key, shown only once.

    Raises InvalidInput when the store does not exist.
    """
    store = session.scalar(sa.select(Store).where(Store.store_hash == store_hash))
    if store is None:
        raise InvalidInput(
            f"store {store_hash}",
            "store",
            "store not found: add it first with 'rebill stores add'",
        )
    prefix, key = generate_key()
    api_key = ApiKey(
        store_id=store.id,
        prefix=prefix,
        key_hash=hash_key(key),
        label=label,
        created_at=now,
    )
    session.add(api_key)
    session.flush()
    return api_key, key


def find_api_key(session: Session, presented: str) -> ApiKey | None:
    """Return the active key whose hash matches `presented`, else None."""
    if not presented.startswith(f"{KEY_SCHEME}_") or len(presented) > 200:
        return None
    digest = hash_key(presented)
    api_key = session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == digest))
    if api_key is None or api_key.revoked_at is not None:
        return None
    # The lookup used the hash as an index key; compare again in constant time.
    if not hmac.compare_digest(api_key.key_hash, digest):
        return None
    return api_key


def revoke_api_key(session: Session, prefix: str, now: datetime) -> ApiKey:
    """Revoke the key with this prefix; raise InvalidInput if none is active."""
    api_key = session.scalar(sa.select(ApiKey).where(ApiKey.prefix == prefix))
    if api_key is None or api_key.revoked_at is not None:
        raise InvalidInput(
            f"api key {prefix}",
            "prefix",
            "no active key has this prefix; list keys with 'rebill api-keys list'",
        )
    api_key.revoked_at = now
    return api_key


def list_api_keys(session: Session, store_hash: str | None = None) -> list[ApiKey]:
    query = sa.select(ApiKey).join(Store).order_by(ApiKey.id)
    if store_hash is not None:
        query = query.where(Store.store_hash == store_hash)
    return list(session.scalars(query))
