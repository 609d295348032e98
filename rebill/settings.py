"""Every setting of rebill, read from REBILL_* environment variables.

Each setting has one line of description, a default and a unit. Every role calls
`Settings.from_env()` at start-up, so an invalid value stops the process with a
message that names the variable instead of failing at the first charge.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from rebill.errors import ConfigurationError

PREFIX = "REBILL_"


@dataclass(frozen=True)
class Setting:
    """How one field of Settings is read from the environment."""

    description: str
    unit: str = ""
    secret: bool = False


def _setting(default: Any, description: str, unit: str = "", secret: bool = False):
    return field(
        default=default,
        metadata={"setting": Setting(description, unit, secret)},
    )


@dataclass(frozen=True)
class Settings:
    database_url: str = _setting(
        "sqlite:///.rebill/rebill.db",
        "SQLAlchemy URL of the database, e.g. postgresql+psycopg://user@host/rebill",
    )
    redis_url: str = _setting(
        "",
        "Redis URL for the Celery broker and the rate limiter; empty starts an "
        "embedded Redis (demo only)",
    )
    bigcommerce_api_url: str = _setting(
        "https://api.bigcommerce.com",
        "root URL of the BigCommerce store API for stores added without --api-url",
    )
    bigcommerce_payments_url: str = _setting(
        "https://payments.bigcommerce.com",
        "root URL of the BigCommerce payments host for stores added without "
        "--payments-url",
    )
    http_connect_timeout: float = _setting(
        5.0, "time allowed to open a connection to BigCommerce", "seconds"
    )
    http_read_timeout: float = _setting(
        30.0, "time allowed for BigCommerce to answer once a request is sent", "seconds"
    )
    scheduler_interval: float = _setting(
        30.0, "pause between two scheduler ticks", "seconds"
    )
    scheduler_batch_size: int = _setting(
        500, "due subscriptions claimed per database transaction", "rows"
    )
    requeue_after: float = _setting(
        600.0,
        "age after which a queued renewal that no worker started is queued again",
        "seconds",
    )
    charge_lease: float = _setting(
        900.0,
        "age after which a renewal claimed by a worker that never reported back is "
        "treated as an unknown outcome",
        "seconds",
    )
    worker_concurrency: int = _setting(
        8, "threads per Celery worker process", "threads"
    )
    payments_rate: float = _setting(
        12.0,
        "POST /payments admitted per store per second; with the burst it must "
        "keep burst + rate x 4 <= 50 (BigCommerce allows 50 per 4 s)",
        "requests/s",
    )
    payments_burst: int = _setting(
        1, "POST /payments a store may send at once after a pause", "requests"
    )
    api_other_apps_share: float = _setting(
        0.1,
        "part of each store's API quota that rebill leaves for the store's other "
        "apps, from 0 to below 1",
        "fraction",
    )
    limiter_max_sleep: float = _setting(
        1.0,
        "longest a worker thread sleeps for a rate limit; a longer wait gives the "
        "renewal back to the queue",
        "seconds",
    )
    limiter_redis_timeout: float = _setting(
        2.0, "time allowed for one rate-limiter call to Redis", "seconds"
    )
    log_level: str = _setting("INFO", "log level: DEBUG, INFO, WARNING or ERROR")
    web_secret_key: str = _setting(
        "",
        "key that signs dashboard session cookies and CSRF tokens; `rebill web` "
        "requires one of at least 32 characters",
        secret=True,
    )
    web_session_hours: float = _setting(
        12.0, "time after which a dashboard sign-in expires", "hours"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting, raising ConfigurationError on the first invalid one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            name = env_name(item.name)
            if name not in environ:
                continue
            values[item.name] = _convert(name, environ[name], item.type)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check ranges that a type conversion alone does not catch."""
        positive = (
            "http_connect_timeout",
            "http_read_timeout",
            "scheduler_interval",
            "scheduler_batch_size",
            "requeue_after",
            "charge_lease",
            "worker_concurrency",
            "web_session_hours",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigurationError(
                    f"{env_name(name)}={getattr(self, name)} is invalid: "
                    "it must be greater than 0"
                )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigurationError(
                f"{env_name('log_level')}={self.log_level!r} is invalid: "
                "use DEBUG, INFO, WARNING or ERROR"
            )
        self._validate_limiter()

    def _validate_limiter(self) -> None:
        from rebill.limiter import PAYMENTS_WINDOW_LIMIT, payments_window_bound

        if self.payments_rate <= 0:
            raise ConfigurationError(
                f"{env_name('payments_rate')}={self.payments_rate} is invalid: "
                "it must be greater than 0"
            )
        if self.payments_burst < 1:
            raise ConfigurationError(
                f"{env_name('payments_burst')}={self.payments_burst} is invalid: "
                "it must be 1 or more"
            )
        bound = payments_window_bound(self.payments_rate, self.payments_burst)
        if bound > PAYMENTS_WINDOW_LIMIT:
            raise ConfigurationError(
                f"{env_name('payments_rate')}={self.payments_rate} with "
                f"{env_name('payments_burst')}={self.payments_burst} admits {bound} "
                f"payments in some 4 s window, more than BigCommerce's "
                f"{PAYMENTS_WINDOW_LIMIT}: lower them so that burst + rate x 4 <= 50"
            )
        if not 0 <= self.api_other_apps_share < 1:
            raise ConfigurationError(
                f"{env_name('api_other_apps_share')}={self.api_other_apps_share} is "
                "invalid: use a fraction from 0 up to, not including, 1"
            )
        if self.limiter_max_sleep < 0:
            raise ConfigurationError(
                f"{env_name('limiter_max_sleep')}={self.limiter_max_sleep} is "
                "invalid: it must be 0 or more"
            )
        if self.limiter_redis_timeout <= 0:
            raise ConfigurationError(
                f"{env_name('limiter_redis_timeout')}={self.limiter_redis_timeout} "
                "is invalid: it must be greater than 0"
            )

    def describe(self) -> list[tuple[str, str, Setting]]:
        """Return (variable, value shown, setting) rows with secrets masked."""
        rows = []
        for item in fields(self):
            setting: Setting = item.metadata["setting"]
            value = str(getattr(self, item.name))
            if setting.secret and value:
                value = "********"
            rows.append((env_name(item.name), value, setting))
        return rows


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def _convert(name: str, raw: str, type_name: Any) -> Any:
    converters: dict[str, Callable[[str], Any]] = {
        "str": str,
        "int": int,
        "float": float,
    }
    converter = converters[str(type_name)]
    try:
        return converter(raw.strip())
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is invalid: expected a number ({type_name})"
        ) from None
