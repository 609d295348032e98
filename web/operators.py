"""Operator accounts of the ops dashboard, with werkzeug password hashes."""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from models import Operator
from rebill.errors import InvalidInput

MIN_PASSWORD_LENGTH = 12
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
# Checked against when the username is unknown, so that a failed sign-in takes
# as long for an unknown user as for a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


def add_operator(
    session: Session, username: str, password: str, now: datetime
) -> Operator:
    """Add an operator; raise InvalidInput for a bad or taken name or short password."""
    record = f"operator {username}"
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(
            record,
            "username",
            "invalid username: use 1-100 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            record,
            "password",
            f"password too short: use at least {MIN_PASSWORD_LENGTH} characters",
        )
    if session.scalar(sa.select(Operator.id).where(Operator.username == username)):
        raise InvalidInput(record, "username", "an operator with this name exists")
    operator = Operator(
        username=username,
        password_hash=generate_password_hash(password),
        created_at=now,
    )
    session.add(operator)
    session.flush()
    return operator


def authenticate(
    session: Session, username: str, password: str, now: datetime
) -> Operator | None:
    """Return the enabled operator with these credentials and stamp the sign-in."""
    operator = None
    # A name add_operator would reject is looked up nowhere: PostgreSQL fails a
    # query whose text contains NUL.
    if _USERNAME.fullmatch(username):
        operator = session.scalar(
            sa.select(Operator).where(Operator.username == username)
        )
    if operator is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(operator.password_hash, password):
        return None
    if operator.disabled:
        return None
    operator.last_login_at = now
    return operator


def set_disabled(session: Session, username: str, disabled: bool) -> Operator:
    operator = session.scalar(sa.select(Operator).where(Operator.username == username))
    if operator is None:
        raise InvalidInput(
            f"operator {username}",
            "username",
            "operator not found; list operators with 'rebill operators list'",
        )
    operator.disabled = disabled
    return operator
