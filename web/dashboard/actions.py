"""Dashboard actions: POST forms that run an operator action and audit it.

The actions themselves are in rebill.actions. A successful action writes its own
audit entry, and the dashboard appends the operator's note to that entry. A
rejected action raises ActionRejected and writes nothing, so the dashboard
writes the one entry itself, with the reason as its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from flask import abort, flash, redirect, url_for
from flask_login import current_user, login_required
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from models import AuditEntry, BillingCycle, CycleState, Store
from rebill import actions
from rebill.actions import ActionResult
from rebill.errors import ActionRejected
from web.app import db, now, services
from web.audit import record_audit
from web.dashboard import dashboard
from web.dashboard.forms import ActionForm

logger = logging.getLogger(__name__)

# The action named in the form's URL -> the name of the rebill.actions function,
# which its audit entries carry as their action.
CYCLE_ACTIONS = {
    "retry": "retry_cycle_now",
    "approve": "approve_cycle",
    "skip": "skip_cycle",
    "cancel": "cancel_subscription",
}


@dataclass(frozen=True)
class AuditTarget:
    """The action and the rows that its audit entry names."""

    action: str
    store_id: int
    subscription_id: int | None = None
    cycle_id: int | None = None


@dashboard.post("/renewals/<id:cycle_id>/<action>")
@login_required
def cycle_action(cycle_id: int, action: str) -> Response:
    name = CYCLE_ACTIONS.get(action)
    if name is None:
        abort(404)
    form = _validated_form()
    cycle = db().get(BillingCycle, cycle_id)
    if cycle is None:
        abort(404)
    subscription_id = cycle.subscription_id
    target = AuditTarget(name, cycle.store_id, subscription_id, cycle_id)

    result = _run_audited(
        target,
        _notes(form),
        lambda: _run_cycle_action(action, cycle_id, subscription_id),
    )

    if result is not None:
        message = result.message
        if action == "retry":
            message = _queue_retry(cycle_id, message)
        flash(message, "ok")
    return redirect(url_for("dashboard.timeline", cycle_id=cycle_id))


def _run_cycle_action(action: str, cycle_id: int, subscription_id: int) -> ActionResult:
    session, moment, actor = db(), now(), _actor()
    if action == "retry":
        if services().enqueue is None:
            raise ActionRejected(
                f"cycle {cycle_id}",
                "this web app was started without a task queue, so it cannot "
                "queue a retry. `rebill web` queues through the Celery broker at "
                "REBILL_REDIS_URL",
            )
        return actions.retry_cycle_now(
            session,
            cycle_id,
            now=moment,
            actor=actor,
            client_for=services().runtime.client_for,
        )
    if action == "approve":
        return actions.approve_cycle(session, cycle_id, now=moment, actor=actor)
    if action == "skip":
        return actions.skip_cycle(session, cycle_id, now=moment, actor=actor)
    return actions.cancel_subscription(
        session, subscription_id, now=moment, actor=actor
    )


def _queue_retry(cycle_id: int, message: str) -> str:
    """Queue the cycle if the retry left it waiting, and return the message to show.

    A retry that reconciled the cycle and found its payment marked it paid
    instead, so there is nothing to queue and `message` reports the payment.
    """
    state = db().scalar(
        sa.select(BillingCycle.state).where(BillingCycle.id == cycle_id)
    )
    db().commit()  # ends the read transaction before the broker is called
    if state != CycleState.RETRY_SCHEDULED:
        return message
    enqueue = services().enqueue
    assert enqueue is not None  # _run_cycle_action rejects a retry without one
    try:
        enqueue(cycle_id)
    except Exception:  # noqa: BLE001 - any broker error leaves the retry to the scheduler
        logger.exception(
            "cycle %d: queueing the retry failed; the scheduler queues it at its "
            "next tick",
            cycle_id,
        )
        return (
            f"cycle {cycle_id}: retry scheduled, but queueing it failed; the "
            "scheduler queues it at its next tick"
        )
    return f"cycle {cycle_id}: retry queued for a worker now"


@dashboard.post("/stores/<id:store_id>/resume")
@login_required
def resume_store(store_id: int) -> Response:
    form = _validated_form()
    store = db().get(Store, store_id)
    if store is None:
        abort(404)
    notes = _notes(form)
    if store.billing_paused_reason:
        notes.insert(0, f"paused because: {store.billing_paused_reason}")

    result = _run_audited(
        AuditTarget("resume_store", store_id),
        notes,
        lambda: actions.resume_store(db(), store_id, now=now(), actor=_actor()),
    )

    if result is not None:
        flash(result.message, "ok")
    return redirect(url_for("dashboard.stores"))


def _run_audited(
    target: AuditTarget, notes: list[str], run: Callable[[], ActionResult]
) -> ActionResult | None:
    """Run a shared action and commit it with exactly one audit entry.

    Returns the action's result, or None when the action was rejected: the
    reason is then flashed, logged and audited, and nothing else is changed.
    """
    session = db()
    try:
        with _added_audit_entries(session) as added:
            result = run()
    except ActionRejected as error:
        _record_rejection(session, target, notes, error)
        return None
    if len(added) != 1:
        raise RuntimeError(
            f"{target.action} added {len(added)} audit entries instead of one; "
            "nothing was committed"
        )
    entry = added[0]
    entry.detail = "; ".join([entry.detail, *notes])
    # cancel_subscription names only the subscription, so the entry gets the
    # renewal it was run from, which keeps it on that renewal's timeline.
    entry.cycle_id = entry.cycle_id or target.cycle_id
    session.commit()
    return result


@contextmanager
def _added_audit_entries(session: Session) -> Iterator[list[AuditEntry]]:
    """Collect the audit entries added to `session` inside the block.

    The shared actions add their entry without returning it. Once flushed, the
    session keeps only a weak reference to it, so it is collected when added.
    """
    added: list[AuditEntry] = []

    def collect(_session: Session, instance: object) -> None:
        if isinstance(instance, AuditEntry):
            added.append(instance)

    sa.event.listen(session, "transient_to_pending", collect)
    try:
        yield added
    finally:
        sa.event.remove(session, "transient_to_pending", collect)


def _record_rejection(
    session: Session, target: AuditTarget, notes: list[str], error: ActionRejected
) -> None:
    """Audit, log and flash a rejected action, which wrote nothing."""
    session.rollback()
    record_audit(
        session,
        now(),
        actor=_actor(),
        action=target.action,
        store_id=target.store_id,
        subscription_id=target.subscription_id,
        cycle_id=target.cycle_id,
        result=str(error),
        detail="; ".join(notes),
    )
    session.commit()
    logger.info("%s: %s rejected: %s", _actor(), target.action, error)
    flash(str(error), "error")


def _validated_form() -> ActionForm:
    form = ActionForm()
    if not form.validate():
        abort(400)
    return form


def _notes(form: ActionForm) -> list[str]:
    note = (form.note.data or "").strip()
    return [f"note: {note}"] if note else []


def _actor() -> str:
    return f"operator {current_user.username}"
