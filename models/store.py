"""A BigCommerce store that rebill bills for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow
from rebill.encryption import EncryptedText

# Store API requests allowed per 30-second window on each BigCommerce plan.
PLAN_QUOTAS = {"standard": 150, "plus": 150, "pro": 450}


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    # The store API access token, Fernet-encrypted with REBILL_SECRET_KEY in the
    # database and plaintext on the loaded object (see rebill.encryption).
    access_token: Mapped[str] = mapped_column(EncryptedText)
    api_url: Mapped[str] = mapped_column(sa.String(255))
    payments_url: Mapped[str] = mapped_column(sa.String(255))
    plan: Mapped[str] = mapped_column(sa.String(20), default="plus")
    api_quota: Mapped[int] = mapped_column(default=150)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    # Overrides of rebill.policy.DEFAULT_POLICY, validated by rebill.policy.
    retry_policy: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    # Local hour (0-23, in `timezone`) at which soft-decline retries run; None
    # runs them at the exact offset of the retry schedule.
    billing_hour: Mapped[int | None] = mapped_column(default=9)
    billing_paused: Mapped[bool] = mapped_column(default=False)
    billing_paused_reason: Mapped[str | None] = mapped_column(sa.Text)
    billing_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A pause caused by a merchant configuration error is probed: at
    # next_probe_at the scheduler releases one cycle (probe_cycle_id) for one
    # attempt. An operator's pause has no probe and lasts until resumed.
    next_probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    probe_count: Mapped[int] = mapped_column(default=0)
    probe_cycle_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Store {self.id} {self.store_hash}>"
