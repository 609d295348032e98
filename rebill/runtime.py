"""Process-wide resources of a role: settings, the database and BigCommerce clients."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from models import Store
from rebill.client import BigCommerceClient, StoreCredentials
from rebill.db import create_engine, session_factory
from rebill.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: sa.Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings.database_url)
        return cls(settings, engine, session_factory(engine))

    def client_for(self, store: Store) -> BigCommerceClient:
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
        )

    def close(self) -> None:
        self.engine.dispose()


@functools.cache
def process_runtime() -> Runtime:
    """Return this process's runtime, built once from the environment."""
    return Runtime.from_settings(Settings.from_env())
