from __future__ import annotations

import pytest

from rebill.errors import ConfigurationError
from rebill.settings import MASK, Settings

FERNET_KEY = "dGVzdC1vbmx5LWtleS1mb3ItcmViaWxsLXRlc3RzLTA="


def test_defaults_are_valid() -> None:
    settings = Settings.from_env({})
    assert settings.log_format == "text"
    assert settings.scheduler_stale_after > settings.scheduler_interval


def test_values_are_read_from_prefixed_variables() -> None:
    settings = Settings.from_env(
        {
            "REBILL_HTTP_READ_TIMEOUT": "12.5",
            "REBILL_WORKER_CONCURRENCY": " 3 ",
            "REBILL_LOG_FORMAT": "json",
            "REBILL_SECRET_KEY": f"{FERNET_KEY}, {FERNET_KEY}",
        }
    )
    assert settings.http_read_timeout == 12.5
    assert settings.worker_concurrency == 3
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("REBILL_HTTP_READ_TIMEOUT", "soon", "expected a number"),
        ("REBILL_HTTP_READ_TIMEOUT", "0", "greater than 0"),
        ("REBILL_SHUTDOWN_TIMEOUT", "-1", "greater than 0"),
        ("REBILL_HEALTH_TIMEOUT", "0", "greater than 0"),
        ("REBILL_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING or ERROR"),
        ("REBILL_LOG_FORMAT", "xml", "use text or json"),
        ("REBILL_SCHEDULER_STALE_AFTER", "30", "must exceed REBILL_SCHEDULER_INTERVAL"),
        ("REBILL_REDIS_URL", "http://127.0.0.1:6379", "redis, rediss or unix"),
        ("REBILL_DATABASE_URL", "not a url", "not a SQLAlchemy URL"),
        ("REBILL_SENTRY_DSN", "https://sentry.example/1", "Missing public key"),
        ("REBILL_SECRET_KEY", "short", "key 1 of 1 is not a Fernet key"),
    ],
    ids=[
        "not-a-number",
        "zero-timeout",
        "negative-shutdown",
        "zero-health",
        "log-level",
        "log-format",
        "stale-below-interval",
        "redis-scheme",
        "database-url",
        "sentry-dsn",
        "secret-key",
    ],
)
def test_invalid_value_names_the_variable(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({variable: value})
    assert variable in str(raised.value)
    assert expected in str(raised.value)


def test_invalid_second_key_is_counted_not_shown() -> None:
    secret = "not-a-key-but-a-secret-all-the-same"
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"REBILL_SECRET_KEY": f"{FERNET_KEY},{secret}"})
    assert "key 2 of 2" in str(raised.value)
    assert secret not in str(raised.value)
    assert FERNET_KEY not in str(raised.value)


def test_invalid_database_url_is_not_repeated() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"REBILL_DATABASE_URL": "postgres ql://u:hunter22@db/x"})
    assert "hunter22" not in str(raised.value)


def test_describe_masks_secrets_and_url_passwords() -> None:
    settings = Settings.from_env(
        {
            "REBILL_SECRET_KEY": FERNET_KEY,
            "REBILL_SENTRY_DSN": "https://publickey123@sentry.example/42",
            "REBILL_DATABASE_URL": "postgresql+psycopg://rebill:hunter22@db/rebill",
            "REBILL_REDIS_URL": "redis://:redispass9@redis:6379/0",
        }
    )
    shown = {variable: value for variable, value, _ in settings.describe()}
    assert shown["REBILL_SECRET_KEY"] == MASK
    assert shown["REBILL_SENTRY_DSN"] == MASK
    assert shown["REBILL_DATABASE_URL"] == (
        f"postgresql+psycopg://rebill:{MASK}@db/rebill"
    )
    assert shown["REBILL_REDIS_URL"] == f"redis://:{MASK}@redis:6379/0"
    text = "\n".join(shown.values())
    for secret in (FERNET_KEY, "publickey123", "hunter22", "redispass9"):
        assert secret not in text


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for variable, _, setting in Settings().describe():
        assert f"`{variable}`" in readme, f"{variable} is missing from the README"
        assert setting.description


def test_secret_values_lists_keys_and_passwords() -> None:
    settings = Settings.from_env(
        {
            "REBILL_SECRET_KEY": FERNET_KEY,
            "REBILL_DATABASE_URL": "postgresql+psycopg://rebill:p%40ss@db/rebill",
        }
    )
    values = settings.secret_values()
    assert FERNET_KEY in values
    assert "p@ss" in values
