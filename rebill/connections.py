"""Recognize a database or Redis that cannot be reached, and name the setting to fix.

A service that is down or a wrong URL setting makes the client libraries raise
deep inside their own code, and a traceback then shows only their internals. The
commands and the scheduler report these errors as one line instead.
"""

from __future__ import annotations

import kombu.exceptions
import redis
import sqlalchemy as sa

from rebill.settings import Settings, env_name

# Errors of a broker or Redis connection (kombu wraps redis-py's) and of the
# database connection. sqlalchemy's OperationalError also covers a database
# that is reachable but fails, such as a locked SQLite file.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    kombu.exceptions.OperationalError,
    redis.ConnectionError,
    redis.TimeoutError,
    sa.exc.OperationalError,
)


def describe_connection_error(error: BaseException, settings: Settings) -> str | None:
    """Return one line naming the service, its setting and the fix, else None.

    None means that `error` is not one of CONNECTION_ERRORS. The URL is shown
    without its password.
    """
    if isinstance(error, sa.exc.OperationalError):
        variable = env_name("database_url")
        return (
            f"the database at {settings.shown('database_url')} ({variable}) failed: "
            f"{first_line(error.orig or error)}. Check that it is running and "
            f"reachable, and that {variable} is right"
        )
    if isinstance(error, CONNECTION_ERRORS):
        variable = env_name("redis_url")
        return (
            f"cannot reach Redis at {settings.shown('redis_url')} ({variable}): "
            f"{first_line(error)}. Start Redis there, or set {variable} to a "
            "running one"
        )
    return None


def qualified_name(error: BaseException) -> str:
    """Return the class name with its module, such as redis.exceptions.TimeoutError."""
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def first_line(error: BaseException) -> str:
    """Return the first line of the error's message, without a final period."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return text.splitlines()[0].rstrip(".")
