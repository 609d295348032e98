"""The `rebill` command: one group with a verb subcommand per job."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from models import MAX_INTEGER, utcnow
from rebill import logs
from rebill.connections import CONNECTION_ERRORS, describe_connection_error
from rebill.errors import InvalidInput, InvalidInputFile, RebillError
from rebill.runtime import Runtime
from rebill.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Key of the loaded Settings in click's context, for reports_errors.
SETTINGS_META_KEY = "rebill.settings"

# An id or code argument: PostgreSQL fails a query with an integer larger than
# an INTEGER column, so a larger one is a usage error naming the argument.
INTEGER_VALUE = click.IntRange(min=0, max=MAX_INTEGER)
PLANS = ("standard", "plus", "pro", "enterprise")
# Maximum lengths of the stores columns for the name and the two URLs.
MAX_NAME_LENGTH = 200
MAX_URL_LENGTH = 255


def load_runtime(*, check: bool = True) -> Runtime:
    """Read and validate the settings, then connect to the database.

    With `check`, also stop unless the database is migrated and REBILL_SECRET_KEY
    decrypts every stored API token (see rebill.startup).
    """
    from rebill.sentry import init_sentry
    from rebill.startup import check_ready

    try:
        settings = Settings.from_env()
        logs.configure(settings.log_level, settings.log_format)
        runtime = Runtime.from_settings(settings)
    except RebillError as error:
        raise click.ClickException(str(error)) from None
    context = click.get_current_context()
    context.meta[SETTINGS_META_KEY] = settings
    context.call_on_close(runtime.close)
    init_sentry(settings, role=context.command_path)
    if check:
        try:
            check_ready(runtime)
        except RebillError as error:
            raise click.ClickException(str(error)) from None
    return runtime


def reports_errors(function: F) -> F:
    """Turn rebill's own errors into a one-line message and exit status 1.

    So does an unreachable database or Redis (see rebill.connections), whose
    message names the setting to check.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except RebillError as error:
            raise click.ClickException(str(error)) from None
        except CONNECTION_ERRORS as error:
            settings = click.get_current_context().meta.get(SETTINGS_META_KEY)
            if settings is None:
                raise
            message = describe_connection_error(error, settings)
            raise click.ClickException(message or str(error)) from None

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper  # type: ignore[return-value]


@click.group()
def main() -> None:
    """rebill: recurring billing for BigCommerce stores."""


@main.command()
@reports_errors
def migrate() -> None:
    """Create or upgrade the database tables to the newest revision."""
    from rebill.encryption import Keyring
    from rebill.migrations import upgrade
    from rebill.startup import check_ready

    runtime = load_runtime(check=False)
    # Stop before migrating if the key is missing: the migration encrypts tokens.
    Keyring.from_setting(runtime.settings.secret_key)
    upgrade(runtime.settings.database_url)
    check_ready(runtime)
    click.echo("database is at the newest revision")


@main.group()
def stores() -> None:
    """Add, update, list and pause stores, and set their retry policy."""


def validate_timezone(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"{value!r} is not an IANA time zone; use a name like America/New_York",
            param=param,
        ) from None
    return value


def validate_store_hash(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    from rebill.subscription_input import parse_store_hash

    return _check_option(parse_store_hash, param, value)


def validate_url(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    from rebill.validation import require_http_url

    return _check_option(
        functools.partial(require_http_url, max_length=MAX_URL_LENGTH), param, value
    )


def validate_store_name(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    from rebill.validation import require_string

    return _check_option(
        functools.partial(require_string, min_length=0, max_length=MAX_NAME_LENGTH),
        param,
        value,
    )


def _check_option(
    check: Callable[..., str], param: click.Parameter, value: str | None
) -> str | None:
    """Run a merchant-input check on an option; its error names the option."""
    if value is None:
        return None
    try:
        return check(value, record="option", field=param.name or "")
    except InvalidInput as error:
        raise click.BadParameter(error.message, param=param) from None


def validate_currency(
    _ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    from rebill.money import currency_exponent

    if value is None:
        return None
    try:
        currency_exponent(value)
    except InvalidInput as error:
        raise click.BadParameter(error.message, param=param) from None
    return value.upper()


@stores.command("add")
@click.option(
    "--hash",
    "store_hash",
    required=True,
    callback=validate_store_hash,
    help="BigCommerce store hash (letters and digits).",
)
@click.option(
    "--token",
    envvar="REBILL_STORE_TOKEN",
    prompt="Store API access token",
    hide_input=True,
    help="Store API access token (read from REBILL_STORE_TOKEN or asked for; "
    "avoid passing it on the command line).",
)
@click.option(
    "--name",
    default="",
    callback=validate_store_name,
    help="Display name of the store.",
)
@click.option(
    "--api-url",
    default=None,
    callback=validate_url,
    help="Root URL of the store API; default: REBILL_BIGCOMMERCE_API_URL.",
)
@click.option(
    "--payments-url",
    default=None,
    callback=validate_url,
    help="Root URL of the payments host; default: REBILL_BIGCOMMERCE_PAYMENTS_URL.",
)
@click.option(
    "--plan",
    type=click.Choice(PLANS),
    default="plus",
    help="BigCommerce plan, which sets the store API quota.",
)
@click.option(
    "--api-quota", type=click.IntRange(min=1), help="Requests per 30 s (enterprise)."
)
@click.option(
    "--timezone",
    default="UTC",
    callback=validate_timezone,
    help="IANA time zone of the store, for its billing hour.",
)
@click.option(
    "--currency",
    default="USD",
    callback=validate_currency,
    help="Default ISO-4217 currency of the store's subscriptions.",
)
@reports_errors
def stores_add(
    store_hash: str,
    token: str,
    name: str,
    api_url: str | None,
    payments_url: str | None,
    plan: str,
    api_quota: int | None,
    timezone: str,
    currency: str,
) -> None:
    """Add a store that rebill bills for."""
    from rebill.subscriptions import add_store

    runtime = load_runtime()
    with runtime.sessions() as session:
        store = add_store(
            session,
            store_hash=store_hash,
            access_token=token,
            api_url=api_url or runtime.settings.bigcommerce_api_url,
            payments_url=payments_url or runtime.settings.bigcommerce_payments_url,
            name=name,
            plan=plan,
            api_quota=api_quota,
            timezone=timezone,
            currency=currency,
        )
        session.commit()
        click.echo(f"store {store.store_hash} added (id {store.id})")


@stores.command("list")
@reports_errors
def stores_list() -> None:
    """List stores with their plan and billing state."""
    import sqlalchemy as sa

    from models import Store

    runtime = load_runtime()
    with runtime.sessions() as session:
        for store in session.scalars(sa.select(Store).order_by(Store.id)):
            state = (
                f"paused: {store.billing_paused_reason}"
                if store.billing_paused
                else "billing"
            )
            click.echo(
                f"{store.id}\t{store.store_hash}\t{store.plan}\t{store.currency}\t"
                f"{store.timezone}\t{state}"
            )


@main.group()
def subscriptions() -> None:
    """Add, import, list and cancel subscriptions."""


@subscriptions.command("add")
@click.option("--store", "store_hash", required=True, help="Store hash.")
@click.option(
    "--customer-id", required=True, type=int, help="BigCommerce customer id (not 0)."
)
@click.option("--cron", required=True, help="Billing schedule, e.g. '0 9 1 * *'.")
@click.option("--timezone", required=True, help="IANA time zone of the schedule.")
@click.option(
    "--template",
    "template_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file with the order template (billing_address, products, ...).",
)
@click.option("--currency", default=None, help="ISO-4217 code; default: the store's.")
@click.option("--reference", default=None, help="Your own id for the subscription.")
@click.option("--payment-method-id", default=None, help="Preferred payment method id.")
@click.option(
    "--first-billing-at",
    default=None,
    help="First renewal, ISO-8601 with offset; default: the schedule's next run.",
)
@reports_errors
def subscriptions_add(
    store_hash: str,
    customer_id: int,
    cron: str,
    timezone: str,
    template_path: Path,
    currency: str | None,
    reference: str | None,
    payment_method_id: str | None,
    first_billing_at: str | None,
) -> None:
    """Add one subscription."""
    try:
        template = json.loads(template_path.read_text())
    except json.JSONDecodeError as error:
        raise click.BadParameter(
            f"{template_path} is not valid JSON: {error}", param_hint="--template"
        ) from None
    record = {
        "store": store_hash,
        "customer_id": customer_id,
        "cron": cron,
        "timezone": timezone,
        "order_template": template,
    }
    optional = {
        "currency": currency,
        "reference": reference,
        "payment_method_id": payment_method_id,
        "first_billing_at": first_billing_at,
    }
    record.update({key: value for key, value in optional.items() if value is not None})
    from rebill.subscriptions import add_subscription

    runtime = load_runtime()
    with runtime.sessions() as session:
        try:
            added = add_subscription(session, record, utcnow(), label="subscription")
        except InvalidInputFile as error:
            raise click.ClickException(not_added_message(error.errors)) from None
        session.commit()
        click.echo(f"subscription {added.id} added")


def not_added_message(errors: list[InvalidInput]) -> str:
    """Describe why `subscriptions add` added nothing, each error by its option."""
    described = [
        f"{option_for_field(error.field)}: {error.message}" for error in errors
    ]
    if len(described) == 1:
        return f"subscription not added: {described[0]}"
    lines = "\n".join(f"  {line}" for line in described)
    return f"subscription not added, {len(described)} errors:\n{lines}"


def option_for_field(field: str) -> str:
    """Return the `subscriptions add` option of a record field, such as --customer-id.

    A field inside the order template is named after --template, as in
    "--template: products[0].quantity".
    """
    prefix = "order_template"
    if field == prefix:
        return "--template"
    if field.startswith(f"{prefix}."):
        return f"--template: {field.removeprefix(prefix + '.')}"
    return "--" + field.replace("_", "-")


@subscriptions.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@reports_errors
def subscriptions_import(path: Path) -> None:
    """Import subscriptions from a JSON array or JSON-lines file, all or nothing."""
    from rebill.subscription_input import parse_subscription_file, read_records
    from rebill.subscriptions import add_subscriptions, known_store_currency

    runtime = load_runtime()
    with runtime.sessions() as session:
        # Validates every record first and reports all errors, duplicates included.
        specs = parse_subscription_file(
            path, lambda store: known_store_currency(session, store)
        )
        labels = [label for label, _ in read_records(path)]
        added = add_subscriptions(
            session, list(zip(labels, specs, strict=True)), utcnow(), source=str(path)
        )
        session.commit()
    click.echo(f"{len(added)} subscription(s) imported from {path}")


@main.command()
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@reports_errors
def scheduler(once: bool) -> None:
    """Run the scheduler: open due renewals and queue them for the workers."""
    from scheduler.daemon import run_forever, run_once

    runtime = load_runtime()
    if once:
        click.echo(str(run_once(runtime)))
        return
    run_forever(runtime)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8800,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on.",
)
def sandbox(host: str, port: int) -> None:
    """Run the local BigCommerce sandbox (never for production)."""
    from sandbox.server import serve_forever

    logs.configure("INFO")
    serve_forever(host, port)


@main.command()
@click.option(
    "--subscriptions",
    "count",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Number of subscriptions to renew.",
)
@click.option(
    "--workdir",
    default=".rebill/demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo's SQLite database and logs (emptied first).",
)
@click.option(
    "--faults",
    is_flag=True,
    help="Renew a small set of subscriptions that end in every outcome class, "
    "with injected faults, and explain each class (--subscriptions is ignored).",
)
@reports_errors
def demo(count: int, workdir: Path, faults: bool) -> None:
    """Renew subscriptions end to end against the local sandbox and summarise."""
    from rebill.demo import run_demo
    from rebill.demo_faults import run_fault_demo

    logs.configure("WARNING")
    if faults:
        sys.exit(run_fault_demo(workdir=workdir))
    sys.exit(run_demo(count=count, workdir=workdir))


# The command modules attach their commands to `main` when imported.
from rebill import (  # noqa: E402
    cli_merchant,  # noqa: F401
    cli_ops,  # noqa: F401
    cli_outcomes,  # noqa: F401
    cli_web,  # noqa: F401
)
