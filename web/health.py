"""Queue, scheduler and rate limiter figures read from Redis.

Shared by the dashboard's health page and /metrics. Each function raises
redis.RedisError when Redis does not answer; callers show that instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from worker.app import QUEUE

# kombu's Redis transport keeps a queue as a list named after it, plus one list
# per priority step ("<queue>\x06\x163" and so on) when priorities are used.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
# Written by the scheduler after each tick, as Unix seconds.
LAST_TICK_KEY = "rebill:scheduler:last_tick"


@dataclass(frozen=True)
class LimiterTotals:
    """Counters that the rate limiter keeps for one store and one host."""

    store_hash: str
    host: str  # "payments" (the payments host) or "api" (the store API)
    admitted: int
    waits: int
    wait_seconds: float
    rate_limited: int


def celery_queue_length(client: redis.Redis) -> int:
    """Return the number of renew tasks waiting in the broker."""
    with client.pipeline() as pipe:
        for suffix in PRIORITY_SUFFIXES:
            pipe.llen(QUEUE + suffix)
        return sum(int(length) for length in pipe.execute())


def last_scheduler_tick(client: redis.Redis) -> datetime | None:
    raw = client.get(LAST_TICK_KEY)
    if raw is None:
        return None
    return datetime.fromtimestamp(float(raw), UTC)


def limiter_totals(client: redis.Redis) -> list[LimiterTotals]:
    """Return the limiter's counters of every store that has any.

    TODO: read the counters once rebill.limiter exposes them.
    """
    return []
