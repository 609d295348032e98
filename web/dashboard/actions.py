"""Dashboard actions: POST forms that change a renewal or a store and audit it."""

from __future__ import annotations

import logging

from flask import abort, flash, redirect, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from models import BillingCycle, Store
from web import operator_actions
from web.app import db, now, services
from web.audit import record_audit
from web.dashboard import dashboard
from web.dashboard.forms import ActionForm
from web.operator_actions import ActionResult

logger = logging.getLogger(__name__)

CYCLE_ACTIONS = ("retry", "approve", "skip", "cancel")


@dashboard.post("/renewals/<int:cycle_id>/<action>")
@login_required
def cycle_action(cycle_id: int, action: str) -> Response:
    if action not in CYCLE_ACTIONS:
        abort(404)
    form = ActionForm()
    if not form.validate():
        abort(400)
    cycle = db().get(BillingCycle, cycle_id)
    if cycle is None:
        abort(404)
    result = _run_cycle_action(action, cycle)
    record_audit(
        db(),
        now(),
        actor=f"operator {current_user.username}",
        action=f"renewal.{action}",
        store_id=cycle.store_id,
        subscription_id=cycle.subscription_id,
        cycle_id=cycle.id,
        result="ok" if result.changed else result.message,
        detail=form.note.data or "",
    )
    db().commit()
    logger.info(
        "cycle %d: operator %s: %s: %s",
        cycle.id,
        current_user.username,
        action,
        result.message,
    )
    if result.changed and action == "retry":
        _enqueue(cycle.id)
    flash(result.message, "ok" if result.changed else "error")
    return redirect(url_for("dashboard.timeline", cycle_id=cycle.id))


def _run_cycle_action(action: str, cycle: BillingCycle) -> ActionResult:
    moment = now()
    if action == "retry":
        if services().enqueue is None:
            return ActionResult(False, "not retried: no broker is configured")
        runtime = services().runtime
        return operator_actions.retry_now(db(), cycle, moment, runtime.client_for)
    if action == "approve":
        return operator_actions.approve(db(), cycle, moment)
    if action == "skip":
        return operator_actions.skip(db(), cycle, moment)
    return operator_actions.cancel_subscription(db(), cycle, moment)


def _enqueue(cycle_id: int) -> None:
    """Queue the renewal now; if the broker fails, the scheduler queues it later."""
    enqueue = services().enqueue
    assert enqueue is not None
    try:
        enqueue(cycle_id)
    except Exception:  # noqa: BLE001 - any broker error leaves the retry to the scheduler
        logger.exception(
            "cycle %d: queueing the retry failed; the scheduler will", cycle_id
        )


@dashboard.post("/stores/<int:store_id>/resume")
@login_required
def resume_store(store_id: int) -> Response:
    form = ActionForm()
    if not form.validate():
        abort(400)
    store = db().get(Store, store_id)
    if store is None:
        abort(404)
    reason = store.billing_paused_reason or ""
    result = operator_actions.resume_store(store)
    record_audit(
        db(),
        now(),
        actor=f"operator {current_user.username}",
        action="store.resume",
        store_id=store.id,
        result="ok" if result.changed else result.message,
        detail=f"{form.note.data or ''} (paused because: {reason})".strip(),
    )
    db().commit()
    logger.info(
        "store %s: operator %s: %s",
        store.store_hash,
        current_user.username,
        result.message,
    )
    flash(
        f"store {store.store_hash}: {result.message}",
        "ok" if result.changed else "error",
    )
    return redirect(url_for("dashboard.stores"))
