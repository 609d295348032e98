"""Payment Access Tokens: HS256 JWTs bound to one store and one order.

A PAT carries the order's total in minor units and its currency, lives one hour
by the sandbox clock and serves one payment attempt. The sandbox signs with a
secret of its own, so a token from another sandbox fails the signature check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from sandbox.errors import ApiRejection, Envelope

PAT_LIFETIME = timedelta(hours=1)
ISSUER = "payments.bigcommerce.com"


@dataclass
class PatRecord:
    """The sandbox's record of a minted PAT, which never includes the token text."""

    jti: str
    store_hash: str
    order_id: int
    amount: int
    currency: str
    is_recurring: bool
    issued_at: datetime
    expires_at: datetime
    used: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "is_recurring": self.is_recurring,
            "amount": self.amount,
            "currency": self.currency,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "used": self.used,
        }


def encode_pat(record: PatRecord, *, store_id: str, secret: bytes) -> str:
    """Sign the JWT for `record`."""
    issued = int(record.issued_at.timestamp())
    claims = {
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(PAT_LIFETIME.total_seconds()),
        "iss": ISSUER,
        "sub": record.store_hash,
        "jti": record.jti,
        "data": {
            "store_id": store_id,
            "order_id": str(record.order_id),
            "amount": record.amount,
            "currency": record.currency,
        },
    }
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})


def new_jti() -> str:
    return str(uuid.uuid4())


def pat_rejected(reason: str) -> ApiRejection:
    return ApiRejection(
        401,
        f"The payment access token is invalid: {reason}. Create a new one with "
        "POST /v3/payments/access_tokens.",
        code=10001,
        envelope=Envelope.PAYMENTS,
    )


def decode_pat(token: str, *, secret: bytes) -> dict[str, Any]:
    """Return the claims of a PAT signed with `secret`; 401/10001 otherwise.

    Expiry is checked by the caller against the sandbox clock, not here.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError:
        raise pat_rejected("bad signature or malformed token") from None
    return claims


def check_pat(record: PatRecord | None, *, store_hash: str, now: datetime) -> PatRecord:
    """Check that a decoded PAT may pay now for `store_hash`; 401/10001 if not."""
    if record is None:
        raise pat_rejected("unknown token")
    if record.store_hash != store_hash:
        raise pat_rejected("it was issued for another store")
    if now >= record.expires_at:
        raise pat_rejected("it has expired")
    if now < record.issued_at:
        raise pat_rejected("it is not valid yet")
    if record.used:
        raise pat_rejected("it was already used")
    return record
