"""`rebill web`, `rebill api-keys` and `rebill operators`."""

from __future__ import annotations

from contextlib import closing

import click

from models import utcnow
from rebill.cli import load_runtime, main, reports_errors
from rebill.errors import ConfigurationError
from rebill.settings import env_name

MIN_SECRET_KEY_LENGTH = 32


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on.",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Request threads of the waitress server.",
)
@click.option(
    "--cookie-secure",
    is_flag=True,
    help="Send the dashboard's session cookie over HTTPS only (set behind TLS).",
)
@reports_errors
def web(host: str, port: int, threads: int, cookie_secure: bool) -> None:
    """Serve the merchant API, the ops dashboard and /metrics."""
    import waitress

    from scheduler.daemon import celery_enqueue
    from web.app import create_app

    runtime = load_runtime()
    secret_key = runtime.settings.web_secret_key
    if len(secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigurationError(
            f"{env_name('web_secret_key')} is missing or shorter than "
            f"{MIN_SECRET_KEY_LENGTH} characters: set it to a random value, for "
            "example the output of: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'"
        )
    app = create_app(
        runtime, enqueue=celery_enqueue(runtime), cookie_secure=cookie_secure
    )
    click.echo(f"rebill web listening on http://{host}:{port}")
    waitress.serve(app, host=host, port=port, threads=threads, ident="rebill")


@main.group("api-keys")
def api_keys() -> None:
    """Create, list and revoke merchant API keys."""


@api_keys.command("create")
@click.option("--store", "store_hash", required=True, help="Store hash of the key.")
@click.option("--label", default="", help="Note to recognise the key by.")
@reports_errors
def api_keys_create(store_hash: str, label: str) -> None:
    """Create an API key for a store and print it once."""
    from web.api_keys import create_api_key

    with closing(load_runtime()) as runtime, runtime.sessions() as session:
        api_key, key = create_api_key(session, store_hash, utcnow(), label=label)
        session.commit()
        click.echo(
            f"API key {api_key.prefix} created for store {store_hash}. It is shown "
            "only now; store it safely:",
            err=True,
        )
        click.echo(key)


@api_keys.command("list")
@click.option("--store", "store_hash", default=None, help="Only keys of this store.")
@reports_errors
def api_keys_list(store_hash: str | None) -> None:
    """List API keys by prefix, store and state, never the keys themselves."""
    from web.api_keys import list_api_keys

    with closing(load_runtime()) as runtime, runtime.sessions() as session:
        for api_key in list_api_keys(session, store_hash):
            state = "revoked" if api_key.revoked_at else "active"
            used = api_key.last_used_at.isoformat() if api_key.last_used_at else "never"
            click.echo(
                f"{api_key.prefix}\t{api_key.store.store_hash}\t{state}\t"
                f"last used {used}\t{api_key.label}"
            )


@api_keys.command("revoke")
@click.argument("prefix")
@reports_errors
def api_keys_revoke(prefix: str) -> None:
    """Revoke the API key with PREFIX (as printed by 'rebill api-keys list')."""
    from web.api_keys import revoke_api_key

    with closing(load_runtime()) as runtime, runtime.sessions() as session:
        revoke_api_key(session, prefix, utcnow())
        session.commit()
    click.echo(f"API key {prefix} revoked")


@main.group()
def operators() -> None:
    """Add, list and disable operators of the ops dashboard."""


@operators.command("add")
@click.argument("username")
@click.option(
    "--password",
    envvar="REBILL_OPERATOR_PASSWORD",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Password (read from REBILL_OPERATOR_PASSWORD or asked for; avoid "
    "passing it on the command line).",
)
@reports_errors
def operators_add(username: str, password: str) -> None:
    """Add an operator who may sign in to the dashboard."""
    from web.operators import add_operator

    with closing(load_runtime()) as runtime, runtime.sessions() as session:
        operator = add_operator(session, username, password, utcnow())
        session.commit()
        click.echo(f"operator {operator.username} added (id {operator.id})")


@operators.command("list")
@reports_errors
def operators_list() -> None:
    """List operators with their state and last sign-in."""
    import sqlalchemy as sa

    from models import Operator

    with closing(load_runtime()) as runtime, runtime.sessions() as session:
        for operator in session.scalars(sa.select(Operator).order_by(Operator.id)):
            state = "disabled" if operator.disabled else "enabled"
            last = operator.last_login_at
            click.echo(
                f"{operator.id}\t{operator.username}\t{state}\t"
                f"last sign-in {last.isoformat() if last else 'never'}"
            )


@operators.command("disable")
@click.argument("username")
@reports_errors
def operators_disable(username: str) -> None:
    """Stop an operator from signing in; existing sessions end at their next request."""
    from web.operators import set_disabled

    with closing(load_runtime()) as runtime, runtime.sessions() as session:
        set_disabled(session, username, True)
        session.commit()
    click.echo(f"operator {username} disabled")
