"""create stores, subscriptions, cycles and attempts

Revision ID: 0001
Revises:
Create Date: 2026-12-04 15:15:36.264418
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "stores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("access_token", sa.String(length=255), nullable=False),
        sa.Column("api_url", sa.String(length=255), nullable=False),
        sa.Column("payments_url", sa.String(length=255), nullable=False),
        sa.Column("plan", sa.String(length=20), nullable=False),
        sa.Column("api_quota", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("retry_policy", sa.JSON(), nullable=False),
        sa.Column("billing_paused", sa.Boolean(), nullable=False),
        sa.Column("billing_paused_reason", sa.Text(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stores")),
        sa.UniqueConstraint("store_hash", name=op.f("uq_stores_store_hash")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("order_template", sa.JSON(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column(
            "next_billing_at", models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("payment_method_id", sa.String(length=100), nullable=True),
        sa.Column("instrument_token", sa.String(length=128), nullable=True),
        sa.Column("end_of_dunning_action", sa.String(length=10), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "amount_minor > 0", name=op.f("ck_subscriptions_amount_positive")
        ),
        sa.CheckConstraint(
            "customer_id > 0", name=op.f("ck_subscriptions_customer_not_guest")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_subscriptions_store_id_stores")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "store_id", "reference", name=op.f("uq_subscriptions_store_id_reference")
        ),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscriptions_due", ["status", "next_billing_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subscriptions_store_id"), ["store_id"], unique=False
        )

    op.create_table(
        "billing_cycles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column(
            "scheduled_at", models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("decline_count", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("queued_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(length=20), nullable=True),
        sa.Column("last_error_code", sa.Integer(), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column("transaction_id", sa.String(length=100), nullable=True),
        sa.Column("paid_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_billing_cycles_store_id_stores")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_billing_cycles_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_cycles")),
        sa.UniqueConstraint(
            "subscription_id",
            "scheduled_at",
            name=op.f("uq_billing_cycles_subscription_id_scheduled_at"),
        ),
    )
    with op.batch_alter_table("billing_cycles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_cycles_order_id"), ["order_id"], unique=False
        )
        batch_op.create_index(
            "ix_billing_cycles_state_next_attempt",
            ["state", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_billing_cycles_store_id"), ["store_id"], unique=False
        )

    op.create_table(
        "charge_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "payment_sent_at", models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("payment_method_id", sa.String(length=100), nullable=True),
        sa.Column("instrument_type", sa.String(length=40), nullable=True),
        sa.Column("instrument_brand", sa.String(length=40), nullable=True),
        sa.Column("instrument_last4", sa.String(length=4), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("transaction_id", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["billing_cycles.id"],
            name=op.f("fk_charge_attempts_cycle_id_billing_cycles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_attempts")),
        sa.UniqueConstraint(
            "cycle_id", "number", name=op.f("uq_charge_attempts_cycle_id_number")
        ),
    )


def downgrade() -> None:

    op.drop_table("charge_attempts")
    with op.batch_alter_table("billing_cycles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_cycles_store_id"))
        batch_op.drop_index("ix_billing_cycles_state_next_attempt")
        batch_op.drop_index(batch_op.f("ix_billing_cycles_order_id"))

    op.drop_table("billing_cycles")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_store_id"))
        batch_op.drop_index("ix_subscriptions_due")

    op.drop_table("subscriptions")
    op.drop_table("stores")
