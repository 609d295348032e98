"""Audit entries: who did what to which store, subscription or renewal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from models import AuditEntry


def record_audit(
    session: Session,
    now: datetime,
    *,
    actor: str,
    action: str,
    store_id: int | None = None,
    subscription_id: int | None = None,
    cycle_id: int | None = None,
    result: str = "ok",
    detail: str = "",
) -> AuditEntry:
    """Add an entry to the session; the caller commits it with the change."""
    entry = AuditEntry(
        created_at=now,
        actor=actor,
        action=action,
        store_id=store_id,
        subscription_id=subscription_id,
        cycle_id=cycle_id,
        result=result,
        detail=detail,
    )
    session.add(entry)
    return entry
