"""Commands for operators: `rebill check`, `health`, `keys` and `demo-data`."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import click

from models import utcnow
from rebill import health, logs
from rebill.cli import load_runtime, main, reports_errors
from rebill.db import create_engine
from rebill.errors import ConfigurationError
from rebill.health import Probe
from rebill.runtime import Runtime
from rebill.settings import Settings


def read_settings() -> Settings:
    """Read the settings, or exit 1 with the message naming the bad variable."""
    try:
        return Settings.from_env()
    except ConfigurationError as error:
        click.echo(f"FAILED  configuration: {error}", err=True)
        sys.exit(1)


def report(probes: Iterable[Probe]) -> None:
    """Print each probe on its own line, then exit 1 if any failed."""
    failed = 0
    for probe in probes:
        click.echo(str(probe))
        failed += not probe.ok
    sys.exit(1 if failed else 0)


@main.command()
def check() -> None:
    """Print the configuration (secrets masked) and test every connection."""
    settings = read_settings()
    logs.configure("WARNING", settings.log_format)
    click.echo("configuration:")
    for variable, shown, setting in settings.describe():
        unit = f" {setting.unit}" if setting.unit and shown else ""
        click.echo(f"  {variable:<32} {shown or '(empty)'}{unit}")
    click.echo("connections:")
    runtime = Runtime.from_settings(settings)
    try:
        report(check_probes(runtime))
    finally:
        runtime.close()


def check_probes(runtime: Runtime) -> Iterable[Probe]:
    """Yield the probes of `rebill check`; store probes need the earlier ones."""
    shown_url = runtime.settings.shown("database_url")
    database = health.probe_database(runtime.engine, shown_url)
    yield database
    yield health.probe_redis(runtime.settings)
    if not database.ok:
        return
    schema = health.probe_schema(runtime)
    yield schema
    if not schema.ok:
        return
    key = health.probe_secret_key(runtime)
    yield key
    if key.ok:
        yield from health.probe_stores(runtime)


@main.command("health")
@click.argument("role", type=click.Choice(["scheduler", "worker", "web"]))
@click.option(
    "--node",
    default=None,
    help="Celery node name to ping for the worker role; default: celery@HOSTNAME.",
)
@click.option(
    "--url",
    default="http://127.0.0.1:8000/health",
    show_default=True,
    help="URL that must respond below HTTP 500 for the web role.",
)
def health_command(role: str, node: str | None, url: str) -> None:
    """Check one role on this host for an orchestrator: exit 0 healthy, 1 not."""
    settings = read_settings()
    logs.configure("WARNING", settings.log_format)
    engine = create_engine(settings.database_url)
    probes = [
        health.probe_database(engine, settings.shown("database_url")),
        health.probe_redis(settings),
    ]
    if role == "scheduler":
        probes.append(
            health.probe_scheduler_tick(settings, utcnow(), health.this_host())
        )
    elif role == "worker":
        probes.append(
            health.probe_worker(settings, node or health.default_worker_node())
        )
    else:
        probes.append(health.probe_http(url, settings.health_timeout))
    engine.dispose()
    report(probes)


@main.group()
def keys() -> None:
    """Create and rotate the keys that encrypt store API tokens."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new random key for REBILL_SECRET_KEY."""
    from rebill.encryption import generate_key

    click.echo(generate_key())
    click.echo(
        "Set it as REBILL_SECRET_KEY. To rotate, put it first, keep the old key "
        "after a comma, and run `rebill keys rotate`.",
        err=True,
    )


@keys.command("rotate")
@reports_errors
def keys_rotate() -> None:
    """Re-encrypt every store token under the first key, all or nothing."""
    from rebill.encryption import Keyring, rotate_tokens

    runtime = load_runtime()
    keyring = Keyring.from_setting(runtime.settings.secret_key)
    try:
        with runtime.engine.begin() as connection:
            count = rotate_tokens(connection, keyring)
    finally:
        runtime.close()
    click.echo(f"{count} store token(s) re-encrypted under the first key")
    if keyring.size > 1:
        click.echo(
            "Restart every role with the first key alone in REBILL_SECRET_KEY; "
            "the other keys are no longer needed."
        )
    else:
        click.echo(
            "REBILL_SECRET_KEY holds one key, so nothing was rotated. Put a new key "
            "first, the current one after a comma, and run this again."
        )


@main.command("demo-data")
@click.option(
    "--sandbox-url",
    required=True,
    help="Root URL of a running sandbox, as the workers reach it.",
)
@click.option(
    "--subscriptions",
    "count",
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Number of demo subscriptions, all due at once.",
)
@reports_errors
def demo_data(sandbox_url: str, count: int) -> None:
    """Add demo renewals to a running sandbox and the database (development only)."""
    import requests

    from rebill.demo_data import add_demo_data

    runtime = load_runtime()
    try:
        added = add_demo_data(runtime, sandbox_url, count)
    except requests.RequestException as error:
        raise click.ClickException(
            f"cannot seed the sandbox at {sandbox_url}: {error}; check that "
            "`rebill sandbox` runs there"
        ) from None
    if added:
        click.echo(f"{added} demo subscription(s) added, billed by {sandbox_url}")
    else:
        click.echo("the demo store is already in the database; nothing added")
