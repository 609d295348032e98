"""Process-wide resources of a role: settings, the database and BigCommerce clients."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis
import sqlalchemy as sa
from redis.backoff import ConstantBackoff
from redis.retry import Retry
from sqlalchemy.orm import Session, sessionmaker

from models import Store
from rebill.client import BigCommerceClient, RequestGate, StoreCredentials
from rebill.db import create_engine, session_factory
from rebill.encryption import Keyring, install_keyring
from rebill.errors import ConfigurationError
from rebill.limiter import Limiter, LimiterConfig, StoreGate
from rebill.logs import register_secret
from rebill.settings import Settings, env_name

# One quick retry covers a pooled connection that Redis closed while idle; a
# Redis that is down fails within two timeouts and the limiter fails closed.
LIMITER_REDIS_RETRY = Retry(ConstantBackoff(0.05), retries=1)


@dataclass
class Runtime:
    settings: Settings
    engine: sa.Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """Connect to the database and install the settings' keys in this process."""
        prepare_process(settings)
        engine = create_engine(settings.database_url)
        return cls(settings, engine, session_factory(engine))

    @functools.cached_property
    def limiter(self) -> Limiter:
        """The rate limiter shared by every thread of this process."""
        if not self.settings.redis_url:
            raise ConfigurationError(
                f"{env_name('redis_url')} is not set: the rate limiter needs the "
                "Redis that every worker shares, for example redis://127.0.0.1:6379/0"
            )
        timeout = self.settings.limiter_redis_timeout
        client = redis.Redis.from_url(
            self.settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=LIMITER_REDIS_RETRY,
        )
        return Limiter(client, limiter_config(self.settings))

    def gate_for(self, store: Store) -> StoreGate:
        """Return a gate that keeps one renewal of the store within its limits."""
        return self.limiter.gate(store.store_hash, store.api_quota)

    def client_for(
        self, store: Store, gate: RequestGate | None = None
    ) -> BigCommerceClient:
        """Return a client for the store whose requests pass `gate`.

        Without a gate, the client gets a new one from gate_for().
        """
        register_secret(store.access_token)
        credentials = StoreCredentials(
            store_hash=store.store_hash,
            access_token=store.access_token,
            api_url=store.api_url.rstrip("/"),
            payments_url=store.payments_url.rstrip("/"),
        )
        return BigCommerceClient(
            credentials,
            connect_timeout=self.settings.http_connect_timeout,
            read_timeout=self.settings.http_read_timeout,
            gate=gate if gate is not None else self.gate_for(store),
        )

    def close(self) -> None:
        if "limiter" in self.__dict__:
            self.limiter.client.close()
        self.engine.dispose()


def limiter_config(settings: Settings) -> LimiterConfig:
    return LimiterConfig(
        payments_rate=settings.payments_rate,
        payments_burst=settings.payments_burst,
        other_apps_share=settings.api_other_apps_share,
        max_sleep=settings.limiter_max_sleep,
    )


@functools.cache
def process_runtime() -> Runtime:
    """Return this process's runtime, built once from the environment."""
    return Runtime.from_settings(Settings.from_env())


def prepare_process(settings: Settings) -> None:
    """Install the keyring and register the settings' secrets for redaction."""
    if settings.secret_key:
        install_keyring(Keyring.from_setting(settings.secret_key))
    for secret in settings.secret_values():
        register_secret(secret)
