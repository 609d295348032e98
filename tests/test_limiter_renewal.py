"""Rate limits on the renewal path: deferral, release unsent, failing closed.

Real parts throughout: the sandbox over HTTP, a Redis server, SQLite and
PostgreSQL, and a Celery app publishing to Redis.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
import redis

from models import BillingCycle, CycleState, OutcomeClass, Store
from rebill.client import ResponseInfo
from rebill.errors import LimiterUnavailable, RateLimitWait
from rebill.limiter import API, PAYMENTS, StoreGate
from rebill.redis_server import EmbeddedRedis, free_port
from rebill.runtime import Runtime
from rebill.settings import Settings
from sandbox.server import SandboxServer
from scheduler.tick import tick
from tests.factories import make_store, make_subscription
from tests.fixtures.sandbox import seed_store
from worker.app import (
    MAX_COUNTDOWN_SECONDS,
    QUEUE,
    RENEW_TASK,
    make_celery,
    queue_after_wait,
)
from worker.renewal import renew

NOW = datetime.now(UTC).replace(microsecond=0)
API_TOKEN = "sandbox-api-token-limits"


@dataclass
class Shop:
    """A sandbox store, the same store in the database and one due cycle."""

    runtime: Runtime
    sandbox: SandboxServer
    store_hash: str
    cycle_id: int

    def cycle(self) -> BillingCycle:
        with self.runtime.sessions() as session:
            cycle = session.get_one(BillingCycle, self.cycle_id)
            cycle.attempts  # noqa: B018 - load the attempts before the session closes
            return cycle

    def sandbox_orders(self) -> list[dict]:
        return self.sandbox.state.orders(self.store_hash)

    def sandbox_charges(self) -> list[dict]:
        return self.sandbox.state.ledger(self.store_hash)


def open_shop(runtime: Runtime, sandbox: SandboxServer) -> Shop:
    seeded = seed_store(sandbox.state, access_token=API_TOKEN)
    with runtime.sessions() as session:
        store = make_store(
            session,
            seeded.store_hash,
            access_token=API_TOKEN,
            api_url=sandbox.api_url,
            payments_url=sandbox.payments_url,
        )
        make_subscription(session, store, next_billing_at=NOW)
        session.commit()
    (cycle_id,) = tick(runtime, NOW, lambda cycle_id: None).opened
    return Shop(runtime, sandbox, seeded.store_hash, cycle_id)


@pytest.fixture
def shop(runtime: Runtime, sandbox: SandboxServer) -> Shop:
    return open_shop(runtime, sandbox)


def test_renewal_takes_its_api_requests_up_front(shop: Shop) -> None:
    assert renew(shop.cycle_id, shop.runtime) == CycleState.PAID
    stats = shop.runtime.limiter.stats(shop.store_hash)
    # Create order, payment methods and PAT, reserved in one decision.
    assert stats.api_admitted == 3
    assert stats.payments_admitted == 1
    assert stats.api_429 == 0


def test_store_out_of_quota_defers_before_claim(shop: Shop) -> None:
    blocked = ResponseInfo(API, 429, {"X-Rate-Limit-Time-Reset-Ms": "20000"})
    shop.runtime.limiter.observe(shop.store_hash, blocked)

    with pytest.raises(RateLimitWait) as raised:
        renew(shop.cycle_id, shop.runtime)

    assert raised.value.host == API
    assert 10 < raised.value.seconds <= 20
    cycle = shop.cycle()
    assert cycle.state == CycleState.DUE
    assert cycle.attempts == []
    assert shop.sandbox_orders() == []


def test_payments_wait_releases_cycle_unsent(shop: Shop) -> None:
    # A 429 with a minute to wait blocks the payments host but not the API.
    blocked = ResponseInfo(PAYMENTS, 429, {"X-Rate-Limit-Time-Reset-Ms": "60000"})
    shop.runtime.limiter.observe(shop.store_hash, blocked)

    with pytest.raises(RateLimitWait) as raised:
        renew(shop.cycle_id, shop.runtime)

    assert raised.value.host == PAYMENTS
    cycle = shop.cycle()
    assert cycle.state == CycleState.RETRY_SCHEDULED
    assert cycle.next_attempt_at is not None
    (attempt,) = cycle.attempts
    assert attempt.outcome == OutcomeClass.NOT_CHARGED
    assert shop.sandbox_charges() == []


def test_unreachable_redis_defers_before_any_request(
    runtime: Runtime, sandbox: SandboxServer
) -> None:
    shop = open_shop(runtime, sandbox)
    settings = replace(runtime.settings, redis_url=f"redis://127.0.0.1:{free_port()}")
    cut_off = Runtime.from_settings(settings)

    with pytest.raises(LimiterUnavailable):
        renew(shop.cycle_id, cut_off)
    cut_off.close()

    assert shop.cycle().state == CycleState.DUE
    assert shop.sandbox_orders() == []
    assert shop.sandbox_charges() == []


class StopRedisBeforePayment(Runtime):
    """A Runtime whose gates stop the Redis server just before a payment."""

    server: EmbeddedRedis

    def gate_for(self, store: Store) -> StoreGate:
        gate = super().gate_for(store)
        decide = gate.before

        def before(host: str) -> None:
            if host == PAYMENTS:
                self.server.stop()
            decide(host)

        gate.before = before  # type: ignore[method-assign]
        return gate


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


def test_redis_lost_before_payment_sends_none(
    settings: Settings, sandbox: SandboxServer, own_redis: EmbeddedRedis
) -> None:
    runtime = StopRedisBeforePayment.from_settings(
        replace(settings, redis_url=own_redis.url)
    )
    assert isinstance(runtime, StopRedisBeforePayment)
    runtime.server = own_redis
    shop = open_shop(runtime, sandbox)

    with pytest.raises(LimiterUnavailable) as raised:
        renew(shop.cycle_id, runtime)
    cycle = shop.cycle()
    runtime.close()

    assert raised.value.host == PAYMENTS
    assert len(shop.sandbox_orders()) == 1
    assert shop.sandbox_charges() == []
    assert cycle.state == CycleState.RETRY_SCHEDULED
    assert cycle.attempts[0].outcome == OutcomeClass.NOT_CHARGED


# The Celery task queues itself again after a wait.


def queued_messages(redis_url: str) -> list[dict]:
    client = redis.Redis.from_url(redis_url)
    raw = client.lrange(QUEUE, 0, -1)
    client.close()
    return [json.loads(item) for item in raw]


def celery_task(settings: Settings):  # noqa: ANN201 - a Celery task proxy
    app = make_celery(settings)

    @app.task(name=RENEW_TASK, bind=True)
    def renew_task(task: object, cycle_id: int) -> None:
        raise AssertionError("the test only publishes this task")

    return renew_task


def test_short_wait_requeues_task_delayed(settings: Settings) -> None:
    task = celery_task(settings)
    wait = RateLimitWait("store1", API, 12.5)

    assert queue_after_wait(task, 7, wait)

    (message,) = queued_messages(settings.redis_url)
    assert message["headers"]["task"] == RENEW_TASK
    assert message["headers"]["eta"] is not None
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [7]


def test_long_wait_requeued_at_max_countdown(settings: Settings) -> None:
    task = celery_task(settings)
    wait = RateLimitWait("store1", API, MAX_COUNTDOWN_SECONDS * 10)

    assert queue_after_wait(task, 7, wait)

    (message,) = queued_messages(settings.redis_url)
    eta = datetime.fromisoformat(message["headers"]["eta"])
    delay = (eta - datetime.now(UTC)).total_seconds()
    assert delay <= MAX_COUNTDOWN_SECONDS
    assert delay > MAX_COUNTDOWN_SECONDS / 2


def test_requeue_with_broker_down_is_left_to_scheduler(settings: Settings) -> None:
    down = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    task = celery_task(down)
    wait = LimiterUnavailable("store1", PAYMENTS, 30, reason="ConnectionError")

    assert not queue_after_wait(task, 7, wait)
