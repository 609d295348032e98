"""Billing cycles (one renewal each) and the charge attempts made for them."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime, utcnow
from models.subscription import Subscription


class CycleState(enum.StrEnum):
    """Where a renewal stands; see the state diagram in the README."""

    DUE = "due"  # row created, no order yet
    ORDER_CREATED = "order_created"  # Incomplete order exists, no charge yet
    CHARGING = "charging"  # claimed by a worker; a payment may be under way
    PAID = "paid"
    RETRY_SCHEDULED = "retry_scheduled"  # waits for next_attempt_at
    # Every stored instrument was declined or is unusable; the scheduler looks
    # for a new one at next_attempt_at.
    AWAITING_INSTRUMENT = "awaiting_instrument"
    UNKNOWN = "unknown"  # a payment may have been taken; reconcile first
    PENDING = "pending"  # BigCommerce answered pending; reconcile later
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"  # waits for an operator
    SKIPPED = "skipped"  # not billed: subscription paused, canceled or skipped


# States from which a worker may claim the cycle and send a payment.
CLAIMABLE_STATES = (
    CycleState.DUE,
    CycleState.ORDER_CREATED,
    CycleState.RETRY_SCHEDULED,
)
FINAL_STATES = (CycleState.PAID, CycleState.FAILED, CycleState.SKIPPED)
# States of a cycle in dunning: it failed and waits to be retried. While a
# subscription has such a cycle, the scheduler opens no new one for it.
DUNNING_STATES = (CycleState.RETRY_SCHEDULED, CycleState.AWAITING_INSTRUMENT)


class OutcomeClass(enum.StrEnum):
    """How the result of one charge attempt is classified."""

    IN_FLIGHT = "in_flight"  # the attempt has not ended
    PAID = "paid"
    PENDING = "pending"
    UNKNOWN = "unknown"
    TRANSIENT = "transient"
    SOFT_DECLINE = "soft_decline"
    HARD_DECLINE = "hard_decline"
    ORDER_PROBLEM = "order_problem"
    MERCHANT_CONFIG = "merchant_config"
    OUR_DATA = "our_data"
    NOT_CHARGED = "not_charged"  # ended before any payment request was sent


class BillingCycle(Base):
    __tablename__ = "billing_cycles"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "scheduled_at"),
        sa.Index("ix_billing_cycles_state_next_attempt", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(sa.ForeignKey("subscriptions.id"))
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("stores.id"), index=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    order_id: Mapped[int | None] = mapped_column(index=True)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    state: Mapped[str] = mapped_column(sa.String(20), default=CycleState.DUE)
    attempt_count: Mapped[int] = mapped_column(default=0)
    decline_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(sa.String(20))
    last_error_code: Mapped[int | None]
    last_error_message: Mapped[str | None] = mapped_column(sa.Text)
    transaction_id: Mapped[str | None] = mapped_column(sa.String(100))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Start and number of checks of the current wait: reconciliation of an
    # UNKNOWN or PENDING cycle, or the search for a new instrument.
    wait_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wait_checks: Mapped[int] = mapped_column(default=0)
    # Orders created again after an order problem; the order's
    # external_order_id carries this number from 1 on.
    order_rebuilds: Mapped[int] = mapped_column(default=0)
    review_reason: Mapped[str | None] = mapped_column(sa.Text)
    # An operator's approval lets a late renewal be charged.
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(sa.String(150))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    subscription: Mapped[Subscription] = relationship()
    attempts: Mapped[list[ChargeAttempt]] = relationship(
        back_populates="cycle", order_by="ChargeAttempt.number"
    )

    def __repr__(self) -> str:
        return f"<BillingCycle {self.id} sub={self.subscription_id} {self.state}>"


class ChargeAttempt(Base):
    """One try at charging a cycle; written before the payment request leaves."""

    __tablename__ = "charge_attempts"
    __table_args__ = (sa.UniqueConstraint("cycle_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(sa.ForeignKey("billing_cycles.id"))
    number: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set, and committed, just before POST /payments: None means never sent.
    payment_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_method_id: Mapped[str | None] = mapped_column(sa.String(100))
    instrument_type: Mapped[str | None] = mapped_column(sa.String(40))
    instrument_brand: Mapped[str | None] = mapped_column(sa.String(40))
    instrument_last4: Mapped[str | None] = mapped_column(sa.String(4))
    # SHA-256 of the instrument token: tells instruments apart without storing
    # the token.
    instrument_fingerprint: Mapped[str | None] = mapped_column(sa.String(64))
    http_status: Mapped[int | None]
    error_code: Mapped[int | None]
    outcome: Mapped[str] = mapped_column(sa.String(20), default=OutcomeClass.IN_FLIGHT)
    message: Mapped[str | None] = mapped_column(sa.Text)
    transaction_id: Mapped[str | None] = mapped_column(sa.String(100))

    cycle: Mapped[BillingCycle] = relationship(back_populates="attempts")

    def __repr__(self) -> str:
        return f"<ChargeAttempt {self.cycle_id}#{self.number} {self.outcome}>"
