"""A customer's subscription: what to order and when to bill it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime, utcnow
from models.store import Store


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    PAST_DUE = "past_due"
    CANCELED = "canceled"


class EndOfDunning(enum.StrEnum):
    """Action taken on a subscription when a renewal has exhausted its retries."""

    PAUSE = "pause"
    SKIP = "skip"
    CANCEL = "cancel"


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.UniqueConstraint("store_id", "reference"),
        sa.Index("ix_subscriptions_due", "status", "next_billing_at"),
        sa.CheckConstraint("customer_id > 0", name="customer_not_guest"),
        sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("stores.id"), index=True)
    reference: Mapped[str | None] = mapped_column(sa.String(200))
    customer_id: Mapped[int]
    cron: Mapped[str] = mapped_column(sa.String(100))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    currency: Mapped[str] = mapped_column(sa.String(3))
    order_template: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    next_billing_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(
        sa.String(20), default=SubscriptionStatus.ACTIVE
    )
    # The instrument to charge first: set by the merchant, then replaced by the
    # instrument of each paid renewal. When instrument_type is known, a renewal
    # charges it without calling Get Payment Methods.
    payment_method_id: Mapped[str | None] = mapped_column(sa.String(100))
    # Preferred stored-instrument token: a secret, never logged or shown.
    instrument_token: Mapped[str | None] = mapped_column(sa.String(128))
    instrument_type: Mapped[str | None] = mapped_column(sa.String(40))
    instrument_brand: Mapped[str | None] = mapped_column(sa.String(40))
    instrument_last4: Mapped[str | None] = mapped_column(sa.String(4))
    instrument_expiry_month: Mapped[int | None]
    instrument_expiry_year: Mapped[int | None]
    end_of_dunning_action: Mapped[str | None] = mapped_column(sa.String(10))
    # Set by "cancel at the end of the period": the scheduler cancels the
    # subscription instead of opening a renewal scheduled at or after this time.
    cancel_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    store: Mapped[Store] = relationship()

    def __repr__(self) -> str:
        return f"<Subscription {self.id} store={self.store_id} {self.status}>"
