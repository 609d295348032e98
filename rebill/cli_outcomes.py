"""Commands for failed renewals and store billing: failures, cycles, policies.

`rebill failures` lists the cycles that are not paid. `rebill cycles` shows one
cycle and runs the operator actions on it; `rebill stores pause|resume|policy`
and `rebill subscriptions cancel` act on stores and subscriptions. Every action
goes through rebill.actions, which writes an audit entry naming the user.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from typing import Any

import click
import sqlalchemy as sa

from models import ChargeAttempt, CycleState, Store, utcnow
from rebill import actions
from rebill.cli import (
    INTEGER_VALUE,
    load_runtime,
    main,
    reports_errors,
    stores,
    subscriptions,
)
from rebill.errors import InvalidInput, RecordNotFound
from rebill.failures import FailureRow, list_failures
from rebill.policy import (
    POLICY_FIELDS,
    describe_policy,
    parse_overrides,
    policy_for,
)

POLICY_HELP = {
    "transient_delays": "Waits before each retry after a transient failure, "
    "e.g. 5m,10m,20m.",
    "soft_decline_schedule": "Retry offsets after the first decline, at the "
    "billing hour, e.g. 1d,3d,7d,14d.",
    "contact_issuer_retries": "Retries after code 30104 (contact the issuer).",
    "unknown_schedule": "Reconcile offsets after an unknown outcome, e.g. 5m,1h,1d.",
    "pending_schedule": "Reconcile offsets after a pending payment, e.g. 1h,1d,2d.",
    "probe_delays": "Waits between probes of a store paused by a merchant "
    "configuration error; the last repeats.",
    "max_declines": "Declines per cycle before dunning ends.",
    "max_attempts": "Counted attempts per cycle before retries stop.",
    "max_days": "Days from a cycle's first attempt after which retries stop.",
    "max_order_rebuilds": "Times a cycle's order is created again after an "
    "order problem.",
    "end_of_dunning": "What happens to the subscription when dunning ends.",
}


def actor() -> str:
    """Return the audit name of the person running the command.

    A user id without a name (a container user missing from /etc/passwd) is
    named by its number.
    """
    try:
        return f"cli {getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli uid {os.getuid()}"


def store_id(session: sa.orm.Session, store_hash: str) -> int:
    return actions.store_id_for_hash(session, store_hash)


@main.command("failures")
@click.option("--store", "store_hash", default=None, help="Only this store hash.")
@click.option(
    "--code",
    "codes",
    multiple=True,
    type=INTEGER_VALUE,
    help="Only cycles whose last error code is this one; repeat for several.",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([state.value for state in CycleState if state != "paid"]),
    help="Only cycles in this state; repeat for several.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Show at most N rows."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object a line.")
@reports_errors
def failures(
    store_hash: str | None,
    codes: tuple[int, ...],
    states: tuple[str, ...],
    limit: int | None,
    as_json: bool,
) -> None:
    """List every cycle that is not paid, oldest first."""
    runtime = load_runtime()
    with runtime.sessions() as session:
        rows = list_failures(
            session, store_hash=store_hash, codes=codes, states=states, limit=limit
        )
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_json()))
        return
    click.echo(format_failures(rows))


FAILURE_COLUMNS = (
    "cycle",
    "store",
    "subscription",
    "order",
    "state",
    "code",
    "attempts",
    "next attempt",
    "message",
)


def format_failures(rows: list[FailureRow]) -> str:
    """Format failure rows as an aligned table, the message last."""
    table = [FAILURE_COLUMNS] + [
        (
            str(row.cycle_id),
            row.store_hash,
            str(row.subscription_id),
            str(row.order_id or "-"),
            row.state,
            str(row.last_error_code or "-"),
            str(row.attempts),
            row.next_attempt_at.isoformat(timespec="seconds")
            if row.next_attempt_at
            else "-",
            row.message or "",
        )
        for row in rows
    ]
    widths = [max(len(line[index]) for line in table) for index in range(8)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + f"  {line[8]}"
        for line in table
    ]
    lines.append(f"{len(rows)} cycle(s) not paid")
    return "\n".join(line.rstrip() for line in lines)


@main.group()
def cycles() -> None:
    """Show billing cycles and act on them."""


@cycles.command("show")
@click.argument("cycle_id", type=INTEGER_VALUE)
@reports_errors
def cycles_show(cycle_id: int) -> None:
    """Show a cycle and every charge attempt made for it."""
    runtime = load_runtime()
    with runtime.sessions() as session:
        cycle = actions.get_cycle(session, cycle_id)
        attempts = session.scalars(
            sa.select(ChargeAttempt)
            .where(ChargeAttempt.cycle_id == cycle_id)
            .order_by(ChargeAttempt.number)
        ).all()
        store_hash = cycle.subscription.store.store_hash
        lines = [
            f"cycle {cycle.id}: {cycle.state}, store {store_hash}, subscription "
            f"{cycle.subscription_id}, order {cycle.order_id or '-'}",
            f"  scheduled {cycle.scheduled_at.isoformat()}, amount "
            f"{cycle.amount_minor} minor units {cycle.currency}",
            f"  next attempt {cycle.next_attempt_at or '-'}",
        ]
        if cycle.review_reason or cycle.last_error_message:
            lines.append(f"  reason: {cycle.review_reason or cycle.last_error_message}")
        lines += [describe_attempt(attempt) for attempt in attempts]
    click.echo("\n".join(lines))


def describe_attempt(attempt: ChargeAttempt) -> str:
    instrument = attempt.instrument_type or "no instrument"
    if attempt.instrument_last4:
        instrument += (
            f" {attempt.instrument_brand or ''} ending {attempt.instrument_last4}"
        )
    code = f" code {attempt.error_code}" if attempt.error_code else ""
    return (
        f"  attempt {attempt.number} at {attempt.started_at.isoformat()}: "
        f"{attempt.outcome}{code} ({instrument}): {attempt.message or ''}"
    ).rstrip()


def run_action(action: Callable[[sa.orm.Session], actions.ActionResult]) -> None:
    """Run one action in a transaction and print what it did."""
    runtime = load_runtime()
    with runtime.sessions() as session:
        result = action(session)
        session.commit()
    click.echo(result.message)


@cycles.command("approve")
@click.argument("cycle_id", type=INTEGER_VALUE)
@reports_errors
def cycles_approve(cycle_id: int) -> None:
    """Release a cycle waiting in review, such as a late renewal, to be charged."""
    run_action(
        lambda session: actions.approve_cycle(
            session, cycle_id, now=utcnow(), actor=actor()
        )
    )


@cycles.command("retry")
@click.argument("cycle_id", type=INTEGER_VALUE)
@reports_errors
def cycles_retry(cycle_id: int) -> None:
    """Charge a cycle again now, after reconciling it if it may be paid."""
    runtime = load_runtime()
    with runtime.sessions() as session:
        result = actions.retry_cycle_now(
            session,
            cycle_id,
            now=utcnow(),
            actor=actor(),
            client_for=runtime.client_for,
        )
        session.commit()
    click.echo(result.message)


@cycles.command("skip")
@click.argument("cycle_id", type=INTEGER_VALUE)
@reports_errors
def cycles_skip(cycle_id: int) -> None:
    """Bill nothing for a cycle; its subscription leaves dunning."""
    run_action(
        lambda session: actions.skip_cycle(
            session, cycle_id, now=utcnow(), actor=actor()
        )
    )


@subscriptions.command("cancel")
@click.argument("subscription_id", type=INTEGER_VALUE)
@reports_errors
def subscriptions_cancel(subscription_id: int) -> None:
    """Cancel a subscription now and skip its cycles waiting to be charged."""
    run_action(
        lambda session: actions.cancel_subscription(
            session, subscription_id, now=utcnow(), actor=actor()
        )
    )


@stores.command("pause")
@click.argument("store_hash")
@click.option("--reason", required=True, help="Why billing stops, for the audit log.")
@reports_errors
def stores_pause(store_hash: str, reason: str) -> None:
    """Stop charging every subscription of a store until it is resumed."""
    run_action(
        lambda session: actions.pause_store(
            session,
            store_id(session, store_hash),
            now=utcnow(),
            actor=actor(),
            reason=reason,
        )
    )


@stores.command("resume")
@click.argument("store_hash")
@reports_errors
def stores_resume(store_hash: str) -> None:
    """Resume a paused store and release the renewals its pause held."""
    run_action(
        lambda session: actions.resume_store(
            session, store_id(session, store_hash), now=utcnow(), actor=actor()
        )
    )


@stores.group("policy")
def policy() -> None:
    """Show and change a store's retry policy."""


def get_store(session: sa.orm.Session, store_hash: str) -> Store:
    store = session.scalar(sa.select(Store).where(Store.store_hash == store_hash))
    if store is None:
        raise RecordNotFound("store", store_hash)
    return store


@policy.command("show")
@click.argument("store_hash")
@reports_errors
def policy_show(store_hash: str) -> None:
    """Print a store's effective policy; overridden settings are marked *."""
    runtime = load_runtime()
    with runtime.sessions() as session:
        store = get_store(session, store_hash)
        overrides = store.retry_policy or {}
        effective = describe_policy(policy_for(overrides))
        hour = store.billing_hour
    click.echo(f"store {store_hash} retry policy (* = set for this store):")
    click.echo(f"  billing_hour: {'none' if hour is None else hour} *")
    for name, value in effective.items():
        shown = ",".join(value) if isinstance(value, list) else value
        mark = " *" if name in overrides else ""
        click.echo(f"  {name}: {shown}{mark}")


def policy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per policy field to `command`."""
    for name in reversed(POLICY_FIELDS):
        option_name = "--" + name.replace("_", "-")
        command = click.option(option_name, name, default=None, help=POLICY_HELP[name])(
            command
        )
    return command


def billing_hour(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> int | None | str:
    """Parse --billing-hour: 0 to 23, or "none" for exact retry offsets."""
    if value is None:
        return "unchanged"
    if value.lower() == "none":
        return None
    if not value.isdigit() or not 0 <= int(value) <= 23:
        raise click.BadParameter(
            f"{value!r} is not an hour; use 0 to 23, or none", param=param
        )
    return int(value)


@policy.command("set")
@click.argument("store_hash")
@click.option(
    "--billing-hour",
    callback=billing_hour,
    default=None,
    help="Local hour (0-23) at which soft-decline retries run, or none for the "
    "exact offsets of the schedule.",
)
@policy_options
@reports_errors
def policy_set(store_hash: str, billing_hour: int | None | str, **values: Any) -> None:
    """Override settings of a store's retry policy; others keep their value."""
    given = {name: value for name, value in values.items() if value is not None}
    given = {name: integer_or_text(value) for name, value in given.items()}
    runtime = load_runtime()
    with runtime.sessions() as session:
        store = get_store(session, store_hash)
        merged = {**(store.retry_policy or {}), **given}
        try:
            store.retry_policy = parse_overrides(merged, record=f"store {store_hash}")
        except InvalidInput as error:
            option = "--" + error.field.split("[")[0].replace("_", "-")
            raise click.BadParameter(error.message, param_hint=option) from None
        if billing_hour != "unchanged":
            store.billing_hour = billing_hour  # type: ignore[assignment]
        session.commit()
    click.echo(f"store {store_hash} retry policy updated")


def integer_or_text(value: str) -> int | str:
    return int(value) if value.strip().lstrip("-").isdigit() else value


@policy.command("reset")
@click.argument("store_hash")
@click.argument("settings", nargs=-1)
@reports_errors
def policy_reset(store_hash: str, settings: tuple[str, ...]) -> None:
    """Return the given settings, or all of them, to the defaults."""
    unknown = [name for name in settings if name not in POLICY_FIELDS]
    if unknown:
        raise click.BadParameter(
            f"unknown setting(s) {', '.join(unknown)}; use any of "
            f"{', '.join(POLICY_FIELDS)}",
            param_hint="SETTINGS",
        )
    runtime = load_runtime()
    with runtime.sessions() as session:
        store = get_store(session, store_hash)
        kept = {
            name: value
            for name, value in (store.retry_policy or {}).items()
            if settings and name not in settings
        }
        store.retry_policy = kept
        session.commit()
    reset = ", ".join(settings) if settings else "every setting"
    click.echo(f"store {store_hash}: {reset} back to the default")
