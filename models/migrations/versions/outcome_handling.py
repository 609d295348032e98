"""add dunning, reconciliation, store probe and last-instrument columns

Revision ID: outcome_handling
Revises: encrypt_store_tokens
Create Date: 2026-12-04 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models

revision: str = "outcome_handling"
down_revision: str | None = "encrypt_store_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("billing_hour", sa.Integer(), nullable=True, server_default="9")
        )
        batch_op.add_column(
            sa.Column(
                "billing_paused_at",
                models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "next_probe_at", models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("probe_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("probe_cycle_id", sa.Integer(), nullable=True))

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("instrument_type", sa.String(length=40), nullable=True)
        )
        batch_op.add_column(
            sa.Column("instrument_brand", sa.String(length=40), nullable=True)
        )
        batch_op.add_column(
            sa.Column("instrument_last4", sa.String(length=4), nullable=True)
        )
        batch_op.add_column(
            sa.Column("instrument_expiry_month", sa.Integer(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("instrument_expiry_year", sa.Integer(), nullable=True)
        )

    with op.batch_alter_table("billing_cycles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "wait_started_at", models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("wait_checks", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "order_rebuilds", sa.Integer(), nullable=False, server_default="0"
            )
        )
        batch_op.add_column(sa.Column("review_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "approved_at", models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("approved_by", sa.String(length=150), nullable=True)
        )

    with op.batch_alter_table("charge_attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("instrument_fingerprint", sa.String(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("charge_attempts", schema=None) as batch_op:
        batch_op.drop_column("instrument_fingerprint")

    with op.batch_alter_table("billing_cycles", schema=None) as batch_op:
        for name in (
            "approved_by",
            "approved_at",
            "review_reason",
            "order_rebuilds",
            "wait_checks",
            "wait_started_at",
        ):
            batch_op.drop_column(name)

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        for name in (
            "instrument_expiry_year",
            "instrument_expiry_month",
            "instrument_last4",
            "instrument_brand",
            "instrument_type",
        ):
            batch_op.drop_column(name)

    with op.batch_alter_table("stores", schema=None) as batch_op:
        for name in (
            "probe_cycle_id",
            "probe_count",
            "next_probe_at",
            "billing_paused_at",
            "billing_hour",
        ):
            batch_op.drop_column(name)
