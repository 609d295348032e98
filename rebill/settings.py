"""Every setting of rebill, read from REBILL_* environment variables.

Each setting has one line of description, a default and a unit. Every role calls
`Settings.from_env()` at start-up, so an invalid value stops the process with a
message that names the variable instead of failing at the first charge.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from rebill.errors import ConfigurationError, InvalidInput
from rebill.validation import require_http_url

if TYPE_CHECKING:
    import sqlalchemy as sa

PREFIX = "REBILL_"
MASK = "********"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
REDIS_SCHEMES = ("redis", "rediss", "unix")
# Database and driver pairs of the SQLAlchemy URLs rebill can open.
SUPPORTED_DATABASE_DRIVERS = ("postgresql+psycopg", "sqlite+pysqlite")


@dataclass(frozen=True)
class Setting:
    """Description, unit and display rule of one Settings field.

    `secret` values are never shown; `url` values are shown without their
    password.
    """

    description: str
    unit: str = ""
    secret: bool = False
    url: bool = False


def _setting(
    default: Any,
    description: str,
    unit: str = "",
    *,
    secret: bool = False,
    url: bool = False,
) -> Any:
    return field(
        default=default,
        metadata={"setting": Setting(description, unit, secret, url)},
    )


@dataclass(frozen=True)
class Settings:
    database_url: str = _setting(
        "sqlite:///.rebill/rebill.db",
        "SQLAlchemy URL of the database, e.g. postgresql+psycopg://user@host/rebill",
        url=True,
    )
    redis_url: str = _setting(
        "",
        "Redis URL for the Celery broker and the rate limiter; empty starts an "
        "embedded Redis (demo only)",
        url=True,
    )
    secret_key: str = _setting(
        "",
        "Fernet keys that encrypt store API tokens at rest, comma-separated: the "
        "first encrypts, the others only decrypt during a rotation; create one with "
        "`rebill keys generate`",
        secret=True,
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
    scheduler_stale_after: float = _setting(
        300.0,
        "age of the scheduler's last tick after which `rebill health scheduler` "
        "fails; must exceed REBILL_SCHEDULER_INTERVAL",
        "seconds",
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
    shutdown_timeout: float = _setting(
        60.0,
        "time a worker stopped by SIGTERM gives its in-flight renewals to finish "
        "before it exits and leaves them to the scheduler's recovery",
        "seconds",
    )
    health_timeout: float = _setting(
        5.0,
        "time allowed for each probe of `rebill health` and `rebill check`",
        "seconds",
    )
    stale_after_days: float = _setting(
        3.0,
        "lateness after which a renewal waits for an operator's approval instead "
        "of being charged",
        "days",
    )
    reconcile_batch_size: int = _setting(
        100,
        "cycles a scheduler tick reconciles or checks for a new instrument at most",
        "cycles",
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
    log_format: str = _setting(
        "text", "log line format: text, or json (one object per line) for shippers"
    )
    sentry_dsn: str = _setting(
        "",
        "Sentry DSN that errors and check-ins go to; empty turns Sentry off",
        secret=True,
    )
    sentry_environment: str = _setting(
        "production", "environment name attached to Sentry events"
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
        """Check what a type conversion alone does not catch."""
        self._validate_positive()
        self._validate_choices()
        self._validate_urls()
        self._validate_limiter()
        if self.scheduler_stale_after <= self.scheduler_interval:
            raise ConfigurationError(
                f"{env_name('scheduler_stale_after')}={self.scheduler_stale_after:g} "
                f"is invalid: it must exceed {env_name('scheduler_interval')}="
                f"{self.scheduler_interval:g}, or every health check fails between "
                "two ticks"
            )
        if self.secret_key:
            check_secret_keys(self.secret_key)

    def _validate_positive(self) -> None:
        positive = (
            "http_connect_timeout",
            "http_read_timeout",
            "scheduler_interval",
            "scheduler_batch_size",
            "scheduler_stale_after",
            "requeue_after",
            "charge_lease",
            "worker_concurrency",
            "stale_after_days",
            "reconcile_batch_size",
            "web_session_hours",
            "shutdown_timeout",
            "health_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigurationError(
                    f"{env_name(name)}={getattr(self, name)} is invalid: "
                    "it must be greater than 0"
                )

    def _validate_choices(self) -> None:
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigurationError(
                f"{env_name('log_level')}={self.log_level!r} is invalid: "
                "use DEBUG, INFO, WARNING or ERROR"
            )
        if self.log_format.lower() not in LOG_FORMATS:
            raise ConfigurationError(
                f"{env_name('log_format')}={self.log_format!r} is invalid: "
                "use text or json"
            )

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

    def _validate_urls(self) -> None:
        import sqlalchemy as sa

        try:
            database_url = sa.make_url(self.database_url)
        except sa.exc.ArgumentError:
            # The URL may contain a password, so the message does not repeat it.
            raise ConfigurationError(
                f"{env_name('database_url')} is invalid: it is not a SQLAlchemy URL "
                "such as postgresql+psycopg://user:password@host/rebill"
            ) from None
        check_database_driver(database_url)
        for name in ("bigcommerce_api_url", "bigcommerce_payments_url"):
            check_http_url(name, getattr(self, name))
        scheme = urlsplit(self.redis_url).scheme
        if self.redis_url and scheme not in REDIS_SCHEMES:
            raise ConfigurationError(
                f"{env_name('redis_url')} is invalid: the scheme must be redis, "
                "rediss or unix, e.g. redis://127.0.0.1:6379/0"
            )
        if self.sentry_dsn:
            check_sentry_dsn(self.sentry_dsn)

    def secret_values(self) -> list[str]:
        """Return the secrets in these settings: keys, DSN and URL passwords."""
        values = [key.strip() for key in self.secret_key.split(",") if key.strip()]
        if self.sentry_dsn:
            values.append(self.sentry_dsn)
        for url in (self.database_url, self.redis_url):
            password = urlsplit(url).password
            if password:
                values += [password, unquote(password)]
        return values

    def describe(self) -> list[tuple[str, str, Setting]]:
        """Return (variable, value shown, setting) rows with secrets masked."""
        rows = []
        for item in fields(self):
            setting: Setting = item.metadata["setting"]
            rows.append((env_name(item.name), self.shown(item.name), setting))
        return rows

    def shown(self, field_name: str) -> str:
        """Return a setting's value as it may be printed or logged."""
        setting: Setting = self.__dataclass_fields__[field_name].metadata["setting"]
        value = str(getattr(self, field_name))
        if setting.secret and value:
            return MASK
        if setting.url:
            return url_without_password(value)
        return value


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def url_without_password(url: str) -> str:
    """Return `url` with the password, if any, replaced by the mask."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}{MASK}@{netloc}"))


def check_secret_keys(value: str) -> None:
    """Raise ConfigurationError unless `value` is a comma-separated Fernet key list.

    The message counts keys instead of quoting them, since they are secrets.
    """
    from cryptography.fernet import Fernet

    keys = value.split(",")
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key.strip())
        except ValueError:
            raise ConfigurationError(
                f"{env_name('secret_key')} is invalid: key {number} of {len(keys)} "
                "is not a Fernet key (32 url-safe base64-encoded bytes); create one "
                "with `rebill keys generate`"
            ) from None


def check_database_driver(url: sa.URL) -> None:
    """Raise ConfigurationError unless the URL names a database and driver rebill has.

    Only psycopg (version 3) and Python's sqlite3 are installed, so any other
    driver, such as mysqldb for mysql:// or psycopg2, would fail to import at
    the first connection.
    """
    import sqlalchemy as sa

    try:
        driver = f"{url.get_backend_name()}+{url.get_driver_name()}"
    except sa.exc.NoSuchModuleError:
        driver = url.drivername
    if driver in SUPPORTED_DATABASE_DRIVERS:
        return
    raise ConfigurationError(
        f"{env_name('database_url')} uses {driver}, which rebill does not support: "
        "use postgresql+psycopg://user:password@host/rebill or "
        "sqlite:///path/to/rebill.db"
    )


def check_http_url(field_name: str, value: str) -> None:
    """Raise ConfigurationError unless `value` is an http or https URL with a host."""
    try:
        require_http_url(value, record="settings", field=field_name)
    except InvalidInput as error:
        raise ConfigurationError(
            f"{env_name(field_name)} is invalid: {error.message}"
        ) from None


def check_sentry_dsn(value: str) -> None:
    """Raise ConfigurationError unless `value` is a DSN that sentry-sdk accepts."""
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(value)
    except BadDsn as error:
        raise ConfigurationError(
            f"{env_name('sentry_dsn')} is invalid: {error}; copy the DSN from the "
            "Sentry project's Client Keys page"
        ) from None


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
