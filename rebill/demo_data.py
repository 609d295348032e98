"""`rebill demo-data`: demo renewals in a sandbox running elsewhere and the database.

The compose file's dev profile runs the sandbox in its own container, so the
demo store, customers and stored cards go in through the sandbox's /_sandbox/
admin API, with the same mix as `rebill demo` (see rebill.demo.seed_sandbox).
The store is then added to the database pointing at that sandbox, with one
subscription per customer, all due at once.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import requests
import sqlalchemy as sa

from models import Store
from rebill.demo import STORE_HASH, seed_database, seed_sandbox
from rebill.runtime import Runtime

logger = logging.getLogger(__name__)

ADMIN_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class AdminClient:
    """The subset of SandboxState's seeding methods, sent over the admin API."""

    url: str

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/_sandbox{path}", json=body, timeout=ADMIN_TIMEOUT_SECONDS
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def add_store(self, store_hash: str, access_token: str, **options: Any) -> None:
        self._post(
            "/stores",
            {"store_hash": store_hash, "access_token": access_token, **options},
        )

    def add_customer(self, store_hash: str, customer_id: int) -> None:
        self._post(f"/stores/{store_hash}/customers", {"customer_id": customer_id})

    def add_instrument(self, store_hash: str, customer_id: int, **options: Any) -> str:
        path = f"/stores/{store_hash}/customers/{customer_id}/instruments"
        return str(self._post(path, options)["token"])


@dataclass(frozen=True)
class RemoteSandbox:
    """A sandbox reached over HTTP, shaped like SandboxServer for rebill.demo."""

    url: str

    @property
    def state(self) -> AdminClient:
        return AdminClient(self.url)

    @property
    def api_url(self) -> str:
        return self.url

    @property
    def payments_url(self) -> str:
        return f"{self.url}/payments-host"


def add_demo_data(runtime: Runtime, sandbox_url: str, count: int) -> int:
    """Seed the sandbox and the database; return the number of subscriptions added.

    Returns 0 and changes nothing when the database already has the demo store.
    """
    with runtime.sessions() as session:
        exists = session.scalar(
            sa.select(Store.id).where(Store.store_hash == STORE_HASH)
        )
    if exists is not None:
        logger.info("demo store %s already present, nothing added", STORE_HASH)
        return 0
    sandbox = RemoteSandbox(sandbox_url.rstrip("/"))
    token = secrets.token_hex(16)
    customers = seed_sandbox(sandbox, count, token)  # type: ignore[arg-type]
    seed_database(runtime, sandbox, customers, token)  # type: ignore[arg-type]
    return len(customers.all())
