"""The Alembic chain: one head, every step up and down, and an upgrade from the
previous revision that ends where the models are. Runs on SQLite and on
PostgreSQL; CI fails instead of skipping when PostgreSQL is missing."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from models import Base
from rebill.db import create_engine
from rebill.migrations import alembic_config, current_revisions, upgrade


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(""))


def differences(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        found = compare_metadata(context, Base.metadata)
    engine.dispose()
    return list(found)


def revision_of(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        revisions = current_revisions(connection)
    engine.dispose()
    return revisions


def test_chain_has_a_single_head() -> None:
    heads = script().get_heads()
    assert len(heads) == 1, f"several heads {heads}: set down_revision to the head"


def test_upgrade_from_previous_revision(empty_database_url: str) -> None:
    head = script().get_revision(script().get_current_head())
    assert head is not None
    previous = head.down_revision
    assert isinstance(previous, str)
    upgrade(empty_database_url, previous)
    assert revision_of(empty_database_url) == {previous}
    upgrade(empty_database_url)
    assert revision_of(empty_database_url) == {head.revision}
    assert differences(empty_database_url) == []


def test_every_step_upgrades_and_downgrades(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    steps = [revision.revision for revision in script().walk_revisions()][::-1]
    for revision in steps:
        command.upgrade(config, revision)
        assert revision_of(empty_database_url) == {revision}
    for revision in reversed(steps):
        command.downgrade(config, "-1")
        assert revision not in revision_of(empty_database_url)
    engine = create_engine(empty_database_url)
    tables = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    assert tables == set()
    upgrade(empty_database_url)
    assert differences(empty_database_url) == []
