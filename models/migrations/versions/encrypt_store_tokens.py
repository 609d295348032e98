"""encrypt store API tokens at rest

Widens stores.access_token to Text (a Fernet token is about four times longer
than the plaintext) and encrypts every existing token with the first key of
REBILL_SECRET_KEY. The process running the migration must have installed its
keyring (`rebill migrate` does); with stores present and no key, the migration
stops before changing anything. The downgrade decrypts the tokens again.

Revision ID: encrypt_store_tokens
Revises: web_access
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from rebill.encryption import (
    DecryptionFailed,
    active_keyring,
    looks_encrypted,
    stored_tokens,
    stores_table,
)

revision: str = "encrypt_store_tokens"
down_revision: str | None = "web_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    connection = op.get_bind()
    tokens = stored_tokens(connection)
    keyring = active_keyring() if tokens else None
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.alter_column(
            "access_token",
            existing_type=sa.String(length=255),
            type_=sa.Text(),
            existing_nullable=False,
        )
    for token in tokens:
        assert keyring is not None
        if looks_encrypted(token.value):
            raise DecryptionFailed(
                f"store {token.store_hash} (id {token.store_id}) already holds a "
                "Fernet token, but the revisions before this one store tokens in "
                "plaintext; check the alembic_version table before migrating"
            )
        op.execute(
            sa.update(stores_table)
            .where(stores_table.c.id == token.store_id)
            .values(access_token=keyring.encrypt(token.value))
        )


def downgrade() -> None:
    connection = op.get_bind()
    tokens = stored_tokens(connection)
    keyring = active_keyring() if tokens else None
    for token in tokens:
        assert keyring is not None
        op.execute(
            sa.update(stores_table)
            .where(stores_table.c.id == token.store_id)
            .values(access_token=keyring.decrypt(token.value))
        )
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.alter_column(
            "access_token",
            existing_type=sa.Text(),
            type_=sa.String(length=255),
            existing_nullable=False,
        )
