"""Merchant configuration commands: `rebill stores update`, `subscriptions list`."""

from __future__ import annotations

import logging
import os

import click
import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import Store, Subscription, SubscriptionStatus, utcnow
from rebill.actions import store_id_for_hash
from rebill.cli import (
    PLANS,
    load_runtime,
    reports_errors,
    stores,
    subscriptions,
    validate_currency,
    validate_store_hash,
    validate_store_name,
    validate_timezone,
    validate_url,
)
from rebill.cli_outcomes import actor
from rebill.errors import InvalidInput
from rebill.money import format_minor_units
from rebill.subscriptions import update_store
from web.audit import record_audit

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "REBILL_STORE_TOKEN"


@stores.command("update")
@click.option(
    "--hash",
    "store_hash",
    required=True,
    callback=validate_store_hash,
    help="BigCommerce store hash of the store to change.",
)
@click.option(
    "--token-from-env",
    is_flag=True,
    help=f"Replace the API access token with {TOKEN_VARIABLE}, or with one typed "
    "at a prompt when it is unset.",
)
@click.option("--name", callback=validate_store_name, help="Display name.")
@click.option("--api-url", callback=validate_url, help="Root URL of the store API.")
@click.option(
    "--payments-url", callback=validate_url, help="Root URL of the payments host."
)
@click.option(
    "--plan",
    type=click.Choice(PLANS),
    help="BigCommerce plan; without --api-quota it also sets the plan's quota.",
)
@click.option(
    "--api-quota",
    type=click.IntRange(min=1),
    help="Store API requests per 30 s (required when moving to enterprise).",
)
@click.option(
    "--timezone", callback=validate_timezone, help="IANA time zone of the store."
)
@click.option(
    "--currency",
    callback=validate_currency,
    help="Default ISO-4217 currency of new subscriptions.",
)
@reports_errors
def stores_update(store_hash: str, token_from_env: bool, **options: object) -> None:
    """Change a store's token, URLs or settings.

    Only the options given change. The new token is encrypted like the one
    `stores add` stores, and the audit log names the changed fields.
    """
    changes = {name: value for name, value in options.items() if value is not None}
    if token_from_env:
        changes["access_token"] = read_store_token()
    if not changes:
        raise click.UsageError(
            "nothing to change: give at least one option, such as --api-url URL"
        )
    runtime = load_runtime()
    with runtime.sessions() as session:
        store, changed = apply_store_changes(session, store_hash, changes)
        if changed:
            record_store_update(session, store.id, changed)
        session.commit()
    logger.info("store %s: updated %s", store_hash, ", ".join(changed) or "nothing")
    if changed:
        click.echo(f"store {store_hash} updated: {', '.join(changed)}")
    else:
        click.echo(f"store {store_hash} unchanged: it already has these values")


def read_store_token() -> str:
    """Return the token from REBILL_STORE_TOKEN, or ask for it without echoing it."""
    token = os.environ.get(TOKEN_VARIABLE, "")
    if token:
        return token
    return str(click.prompt("Store API access token", hide_input=True))


def apply_store_changes(
    session: Session, store_hash: str, changes: dict[str, object]
) -> tuple[Store, list[str]]:
    """Update the store, reporting an invalid plan or quota against its option."""
    try:
        return update_store(session, store_hash, changes)
    except InvalidInput as error:
        option = "--" + error.field.replace("_", "-")
        raise click.BadParameter(error.message, param_hint=option) from None


def record_store_update(session: Session, store_id: int, changed: list[str]) -> None:
    """Audit the update by the names of the changed fields, never their values."""
    record_audit(
        session,
        utcnow(),
        actor=actor(),
        action="store.update",
        store_id=store_id,
        detail=", ".join(changed),
    )


SUBSCRIPTION_COLUMNS = (
    "id",
    "store",
    "reference",
    "customer",
    "cron",
    "time zone",
    "amount",
    "status",
    "next billing",
)


@subscriptions.command("list")
@click.option("--store", "store_hash", default=None, help="Only this store hash.")
@click.option(
    "--status",
    type=click.Choice([status.value for status in SubscriptionStatus]),
    default=None,
    help="Only subscriptions with this status.",
)
@reports_errors
def subscriptions_list(store_hash: str | None, status: str | None) -> None:
    """List subscriptions by id, without their instrument tokens."""
    runtime = load_runtime()
    with runtime.sessions() as session:
        rows = [
            subscription_row(subscription, hash_)
            for subscription, hash_ in find_subscriptions(session, store_hash, status)
        ]
    click.echo(format_table(SUBSCRIPTION_COLUMNS, rows))
    click.echo(f"{len(rows)} subscription(s)")


def find_subscriptions(
    session: Session, store_hash: str | None, status: str | None
) -> list[tuple[Subscription, str]]:
    """Return the matching subscriptions with their store hash, ordered by id.

    Raises RecordNotFound for an unknown `store_hash`.
    """
    query = (
        sa.select(Subscription, Store.store_hash)
        .join(Store, Store.id == Subscription.store_id)
        .order_by(Subscription.id)
    )
    if store_hash is not None:
        query = query.where(
            Subscription.store_id == store_id_for_hash(session, store_hash)
        )
    if status is not None:
        query = query.where(Subscription.status == status)
    return [(subscription, hash_) for subscription, hash_ in session.execute(query)]


def subscription_row(subscription: Subscription, store_hash: str) -> tuple[str, ...]:
    """Return a subscription's table cells, which never show its instrument token."""
    return (
        str(subscription.id),
        store_hash,
        subscription.reference or "-",
        str(subscription.customer_id),
        subscription.cron,
        subscription.timezone,
        format_minor_units(subscription.amount_minor, subscription.currency),
        subscription.status,
        subscription.next_billing_at.isoformat(timespec="seconds"),
    )


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Format rows as a table with columns two spaces apart, the last one unpadded."""
    table = [header, *rows]
    widths = [max(len(line[index]) for line in table) for index in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in table
    ]
    return "\n".join(line.rstrip() for line in lines)
