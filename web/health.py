"""Queue, scheduler and rate limiter figures read from Redis.

Shared by the dashboard's health page and /metrics. Each function raises
redis.RedisError when Redis is unreachable, and callers show that error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import redis

from rebill.health import last_tick
from rebill.limiter import LimiterStats, stats_key
from worker.app import QUEUE

# kombu's Redis transport keeps a queue as a list named after it, plus one list
# per priority step ("<queue>\x06\x163" and so on) when priorities are used.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def celery_queue_length(client: redis.Redis) -> int:
    """Return the number of renew tasks waiting in the broker."""
    with client.pipeline() as pipe:
        for suffix in PRIORITY_SUFFIXES:
            pipe.llen(QUEUE + suffix)
        return sum(int(length) for length in pipe.execute())


def last_scheduler_tick(client: redis.Redis) -> datetime | None:
    """Return when the last scheduler tick of any host finished, None if never."""
    return last_tick(client)


def limiter_stats(
    client: redis.Redis, store_hashes: Iterable[str]
) -> dict[str, LimiterStats]:
    """Return the rate limiter's counters of each store (zeros when idle)."""
    hashes = list(store_hashes)
    with client.pipeline() as pipe:
        for store_hash in hashes:
            pipe.hgetall(stats_key(store_hash))
        raw = pipe.execute()
    return {
        store_hash: LimiterStats.from_hash(store_hash, values)
        for store_hash, values in zip(hashes, raw, strict=True)
    }
