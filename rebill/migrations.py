"""Run the Alembic migrations that live in models/migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

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
