"""Run the Alembic migrations that live in models/migrations."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

import models

MIGRATIONS_DIR = Path(models.__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (the newest by default)."""
    command.upgrade(alembic_config(database_url), revision)


def head_revisions() -> set[str]:
    """Return the newest revision(s) of the migration scripts; one when linear."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config("")).get_heads())


def current_revisions(connection: Connection) -> set[str]:
    """Return the revision(s) the database is at; empty for a new database."""
    # Read Alembic's table directly: a MigrationContext would log two INFO lines
    # on every start-up check.
    if not sa.inspect(connection).has_table("alembic_version"):
        return set()
    return set(connection.scalars(sa.text("SELECT version_num FROM alembic_version")))
