"""Read-only dashboard pages: overview, failures, timeline, stores, audit log."""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa
from flask import abort, render_template, request
from flask_login import login_required

from models import AuditEntry, BillingCycle, ChargeAttempt, OutcomeClass
from rebill.money import format_minor_units
from web.app import db, now, services
from web.dashboard import dashboard, queries
from web.dashboard.forms import ActionForm
from web.health import celery_queue_length, last_scheduler_tick, limiter_stats
from web.ids import integer_filter

logger = logging.getLogger(__name__)

AUDIT_PAGE_SIZE = 100


@dashboard.get("/")
@login_required
def overview() -> str:
    moment = now()
    weeks, recovery = queries.recovery_by_code(db(), moment)
    return render_template(
        "overview.html",
        today=queries.today_counts(db(), moment),
        weeks=weeks,
        recovery=recovery,
        moment=moment,
    )


@dashboard.get("/failures")
@login_required
def failures() -> str:
    filters = _failure_filters()
    rows = queries.failures(db(), filters, now())
    next_after = rows[-1][0].id if len(rows) == queries.PAGE_SIZE else None
    return render_template(
        "failures.html",
        rows=rows,
        filters=filters,
        next_after=next_after,
        stores=queries.store_hashes(db()),
        outcomes=[outcome.value for outcome in OutcomeClass],
        ages=list(queries.AGE_FILTERS),
    )


def _failure_filters() -> queries.FailureFilters:
    """Read the failure filters from the query string, ignoring invalid values."""
    age = request.args.get("age", "")
    return queries.FailureFilters(
        store=_text_filter("store"),
        code=integer_filter(request.args.get("code", "")),
        outcome=_text_filter("outcome"),
        age=age if age in queries.AGE_FILTERS else "",
        after=integer_filter(request.args.get("after", "")) or 0,
    )


def _text_filter(name: str) -> str:
    # PostgreSQL rejects NUL in a query parameter, and no row contains one.
    value = request.args.get(name, "").strip()
    return "" if "\x00" in value else value


@dashboard.get("/renewals/<id:cycle_id>")
@login_required
def timeline(cycle_id: int) -> str:
    cycle = db().get(BillingCycle, cycle_id)
    if cycle is None:
        abort(404)
    attempts = (
        db()
        .scalars(
            sa.select(ChargeAttempt)
            .where(ChargeAttempt.cycle_id == cycle.id)
            .order_by(ChargeAttempt.number)
        )
        .all()
    )
    audit = (
        db()
        .scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.cycle_id == cycle.id)
            .order_by(AuditEntry.id)
        )
        .all()
    )
    return render_template(
        "timeline.html",
        cycle=cycle,
        subscription=cycle.subscription,
        store=cycle.subscription.store,
        attempts=attempts,
        audit=audit,
        amount=format_minor_units(cycle.amount_minor, cycle.currency),
        form=ActionForm(),
        can_retry=services().enqueue is not None,
    )


@dashboard.get("/stores")
@login_required
def stores() -> str:
    return render_template(
        "stores.html",
        rows=queries.store_rows(db(), now()),
        redis_health=_redis_health(),
        form=ActionForm(),
    )


def _redis_health() -> dict[str, object]:
    client = services().redis
    if client is None:
        return {"error": "REBILL_REDIS_URL is not set"}
    try:
        return {
            "queue": celery_queue_length(client),
            "last_tick": last_scheduler_tick(client),
            "limiter": limiter_stats(client, queries.store_hashes(db())),
        }
    except redis.RedisError as error:
        logger.warning("dashboard: Redis unreachable: %s", error)
        return {"error": f"Redis unreachable: {error}"}


@dashboard.get("/audit")
@login_required
def audit() -> str:
    entries = (
        db()
        .scalars(
            sa.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_PAGE_SIZE)
        )
        .all()
    )
    return render_template("audit.html", entries=entries)
