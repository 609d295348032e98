"""Every Procfile role and compose service runs a command that exists.

Commands are resolved without running them: a `rebill` command through the
click group down to its options, `celery -A worker` through the Celery app
and the options of Celery's own subcommand, `python -c` by compiling the code.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from rebill.cli import main
from rebill.settings import Settings

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
PROCFILE = dict(
    line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
)
ROLES = ("migrate", "scheduler", "worker", "web")


def rebill_services() -> dict[str, dict[str, Any]]:
    """Compose services built from rebill's Dockerfile."""
    return {
        name: service
        for name, service in COMPOSE["services"].items()
        if "build" in service
    }


def commands() -> list[tuple[str, list[str]]]:
    """Every command line of the Procfile and the compose file, with a label."""
    found = [(f"Procfile {role}", shlex.split(line)) for role, line in PROCFILE.items()]
    for name, service in rebill_services().items():
        found.append((f"compose {name}", list(service["command"])))
        health = service.get("healthcheck", {}).get("test")
        if health:
            assert health[0] == "CMD", f"compose {name}: use the exec form"
            found.append((f"compose {name} healthcheck", list(health[1:])))
    return found


def check_click_command(group: click.Group, arguments: list[str]) -> None:
    """Resolve `arguments` through click, parsing options without invoking.

    rebill's groups take no options, so each leading word names a subcommand.
    """
    command: click.Command = group
    rest = list(arguments)
    while isinstance(command, click.Group):
        assert rest, f"{arguments} names only the group {command.name}"
        name, rest = rest[0], rest[1:]
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"no command {name} in {command.name}"
        command = found
    command.make_context(command.name, rest)


def check_celery_command(arguments: list[str]) -> None:
    from celery.bin.celery import celery

    assert arguments[:2] == ["-A", "worker"], "celery must load the worker app"
    # A fresh interpreter finds the app the way `celery -A worker` does; in this
    # process `worker.app` may already name the submodule.
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from celery.app.utils import find_app; "
            "print(' '.join(sorted(find_app('worker').tasks)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "rebill.renew" in found.stdout.split()
    subcommand = celery.commands[arguments[2]]
    known = {option for param in subcommand.params for option in param.opts}
    for argument in arguments[3:]:
        if argument.startswith("-"):
            assert argument in known, f"celery {arguments[2]} has no {argument}"


def check_command(arguments: list[str]) -> None:
    program, rest = arguments[0], arguments[1:]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    if program == "rebill":
        assert scripts["rebill"] == "rebill.cli:main"
        check_click_command(main, rest)
    elif program == "celery":
        check_celery_command(rest)
    elif program == "python":
        assert rest[0] == "-c"
        compile(rest[1], "<healthcheck>", "exec")
    else:
        raise AssertionError(f"unknown program {program}")


@pytest.mark.parametrize(
    ("label", "arguments"), commands(), ids=[label for label, _ in commands()]
)
def test_command_exists(
    label: str, arguments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building the Celery app needs a broker URL; nothing connects to it.
    monkeypatch.setenv("REBILL_REDIS_URL", "redis://127.0.0.1:6379/0")
    check_command(arguments)


def test_procfile_and_compose_share_roles() -> None:
    assert set(PROCFILE) == {"release", "scheduler", "worker", "web"}
    assert set(ROLES) <= set(rebill_services())
    assert PROCFILE["release"].strip() == "rebill migrate"
    for role in ("scheduler", "worker", "web"):
        compose_command = list(COMPOSE["services"][role]["command"])
        assert shlex.split(PROCFILE[role])[:2] == compose_command[:2]


def test_every_rebill_service_gets_the_secret_key() -> None:
    for name, service in rebill_services().items():
        assert "REBILL_SECRET_KEY" in service["environment"], name


def test_worker_grace_period_covers_shutdown_timeout() -> None:
    grace = COMPOSE["services"]["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > Settings().shutdown_timeout


def test_dev_profile_runs_sandbox_with_demo_data() -> None:
    services = COMPOSE["services"]
    assert services["sandbox"]["profiles"] == ["dev"]
    assert services["demo-data"]["profiles"] == ["dev"]
    assert "http://sandbox:8800" in services["demo-data"]["command"]
    assert "8800" in services["sandbox"]["command"]


def test_dockerfile_runs_as_non_root_with_every_package() -> None:
    lines = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "the image must set a USER"
    assert users[-1] not in ("root", "0")
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]["packages"]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"{pattern} is not copied"
