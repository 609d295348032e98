"""Health probes for `rebill health` and `rebill check`; the scheduler's tick record.

Each probe returns a Probe instead of raising, so a command can print every
result and exit 1 if any failed. The scheduler records the time of each
finished tick in Redis under two keys: one for its host, read by the health
check running beside it (in the same container), and one for the whole
deployment, read by dashboards.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis
import requests
import sqlalchemy as sa

from rebill.encryption import Keyring
from rebill.migrations import head_revisions
from rebill.runtime import Runtime
from rebill.settings import Settings
from rebill.startup import check_schema, check_store_tokens

if TYPE_CHECKING:
    from models import Store

logger = logging.getLogger(__name__)

LAST_TICK_KEY = "rebill:scheduler:last_tick"
# A host's record outlives any sensible REBILL_SCHEDULER_STALE_AFTER, then goes,
# so containers that no longer exist leave no keys behind.
HOST_TICK_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Probe:
    """The result of one health probe, with a one-line detail for people."""

    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'FAILED':<7} {self.name}: {self.detail}"


def host_tick_key(host: str) -> str:
    return f"{LAST_TICK_KEY}:{host}"


def redis_client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def record_tick(client: redis.Redis, now: float, host: str | None = None) -> None:
    """Store `now` (Unix seconds) as the time of the last finished tick."""
    host = host or this_host()
    with client.pipeline() as pipe:
        pipe.set(host_tick_key(host), repr(now), ex=HOST_TICK_TTL_SECONDS)
        pipe.set(LAST_TICK_KEY, repr(now))
        pipe.execute()


def last_tick(client: redis.Redis, host: str | None = None) -> datetime | None:
    """Return when the last tick finished, on `host` or anywhere; None if never."""
    raw = client.get(host_tick_key(host) if host else LAST_TICK_KEY)
    if raw is None:
        return None
    return datetime.fromtimestamp(float(raw), UTC)


def tick_is_recent(last: datetime | None, now: datetime, stale_after: float) -> bool:
    """Return whether a tick finished within `stale_after` seconds before `now`."""
    return last is not None and (now - last).total_seconds() <= stale_after


def timed(name: str, probe: Callable[[], str]) -> Probe:
    """Run `probe`, turning its return value or exception into a Probe."""
    started = time.monotonic()
    try:
        detail = probe()
    except Exception as error:  # a probe reports every failure instead of raising
        return Probe(name, False, f"{type(error).__name__}: {error}")
    elapsed_ms = (time.monotonic() - started) * 1000
    return Probe(name, True, f"{detail} ({elapsed_ms:.0f} ms)")


def probe_database(engine: sa.Engine, shown_url: str) -> Probe:
    def select_one() -> str:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return f"{shown_url} answered"

    return timed("database", select_one)


def probe_redis(settings: Settings) -> Probe:
    if not settings.redis_url:
        return Probe("redis", False, "REBILL_REDIS_URL is not set")

    def ping() -> str:
        client = redis_client(settings.redis_url, settings.health_timeout)
        try:
            client.ping()
        finally:
            client.close()
        return f"{settings.shown('redis_url')} answered PING"

    return timed("redis", ping)


def probe_scheduler_tick(settings: Settings, now: datetime, host: str) -> Probe:
    """Fail unless this host's scheduler finished a tick recently."""
    if not settings.redis_url:
        return Probe("scheduler tick", False, "REBILL_REDIS_URL is not set")
    try:
        client = redis_client(settings.redis_url, settings.health_timeout)
        try:
            last = last_tick(client, host)
        finally:
            client.close()
    except redis.RedisError as error:
        return Probe("scheduler tick", False, f"cannot read the last tick: {error}")
    if last is None:
        return Probe("scheduler tick", False, f"no tick recorded for host {host}")
    age = (now - last).total_seconds()
    detail = (
        f"last tick on {host} {age:.0f} s ago "
        f"(limit {settings.scheduler_stale_after:g} s)"
    )
    return Probe(
        "scheduler tick",
        tick_is_recent(last, now, settings.scheduler_stale_after),
        detail,
    )


def probe_worker(settings: Settings, node: str) -> Probe:
    """Ping one Celery worker node through the broker."""
    if not settings.redis_url:
        return Probe("worker", False, "REBILL_REDIS_URL is not set")

    def ping() -> str:
        from worker.app import make_celery

        app = make_celery(settings)
        try:
            replies = app.control.ping(
                destination=[node], timeout=settings.health_timeout
            )
        finally:
            app.close()
        if not any(node in reply for reply in replies):
            raise TimeoutError(f"{node} did not reply to the ping")
        return f"{node} replied to the ping"

    return timed("worker", ping)


def probe_http(url: str, timeout: float) -> Probe:
    """Fail unless `url` responds with a status below 500."""

    def get() -> str:
        response = requests.get(url, timeout=timeout, allow_redirects=False)
        if response.status_code >= 500:
            raise RuntimeError(f"HTTP {response.status_code}")
        return f"{url} responded HTTP {response.status_code}"

    return timed("web", get)


def this_host() -> str:
    return socket.gethostname()


def default_worker_node() -> str:
    """Return the node name `celery worker` picks when started without --hostname."""
    return f"celery@{this_host()}"


class TickMonitor:
    """Records each scheduler tick for `rebill health scheduler`.

    Recording is best effort: a Redis error is logged and the scheduler goes on,
    and the health check then reports the missing tick.
    """

    def __init__(self, settings: Settings, host: str | None = None) -> None:
        self.host = host or this_host()
        self._client = (
            redis_client(settings.redis_url, settings.health_timeout)
            if settings.redis_url
            else None
        )

    def finished(self) -> None:
        if self._client is None:
            return
        try:
            record_tick(self._client, time.time(), self.host)
        except redis.RedisError as error:
            logger.warning("scheduler: could not record the tick in Redis: %s", error)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def probe_schema(runtime: Runtime) -> Probe:
    def revision() -> str:
        check_schema(runtime)
        return f"at revision {', '.join(sorted(head_revisions()))}, the newest"

    return timed("database schema", revision)


def probe_secret_key(runtime: Runtime) -> Probe:
    def decrypt_all() -> str:
        keyring = Keyring.from_setting(runtime.settings.secret_key)
        count = check_store_tokens(runtime, keyring)
        return f"{keyring.size} key(s); {count} store token(s) decrypt"

    return timed("secret key", decrypt_all)


def probe_stores(runtime: Runtime) -> list[Probe]:
    """Make one authenticated request to each store's API through rebill.client."""
    from models import Store

    with runtime.sessions() as session:
        stores = session.scalars(sa.select(Store).order_by(Store.id)).all()
    return [probe_store(runtime, store) for store in stores]


def probe_store(runtime: Runtime, store: Store) -> Probe:
    def get_orders() -> str:
        runtime.client_for(store).check_access()
        return f"{store.api_url} accepted the token"

    return timed(f"store {store.store_hash} (id {store.id})", get_orders)
