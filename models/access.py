"""Who may use the web service: merchants' API keys, operators, and the audit log."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime, utcnow
from models.store import Store


class ApiKey(Base):
    """A merchant API key of one store, stored only as the SHA-256 of the key.

    Keys are 256-bit random values, so a fast hash is enough: nobody can guess a
    key from its hash, and lookups stay one indexed query. `prefix` is the
    key's non-secret first part, shown in listings and logs to identify it.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(sa.ForeignKey("stores.id"), index=True)
    prefix: Mapped[str] = mapped_column(sa.String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    label: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    store: Mapped[Store] = relationship()

    def __repr__(self) -> str:
        return f"<ApiKey {self.prefix} store={self.store_id}>"


class Operator(Base):
    """A person who may sign in to the ops dashboard."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(100), unique=True)
    # A werkzeug.security hash (scrypt by default), never the password.
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Operator {self.id} {self.username}>"


class AuditEntry(Base):
    """One action taken by an operator or through the merchant API.

    `actor` is "operator <username>" or "api key <prefix>". `result` is "ok" when
    the action changed something, or the reason it changed nothing.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (sa.Index("ix_audit_entries_cycle_created", "cycle_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(150))
    action: Mapped[str] = mapped_column(sa.String(40))
    store_id: Mapped[int | None] = mapped_column(sa.ForeignKey("stores.id"))
    subscription_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscriptions.id")
    )
    cycle_id: Mapped[int | None] = mapped_column(sa.ForeignKey("billing_cycles.id"))
    result: Mapped[str] = mapped_column(sa.Text, default="ok")
    detail: Mapped[str] = mapped_column(sa.Text, default="")

    def __repr__(self) -> str:
        return f"<AuditEntry {self.id} {self.actor} {self.action}>"
