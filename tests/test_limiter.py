"""The rate limiter against a real Redis: window bound, isolation, 429s, outages."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from rebill.client import ResponseInfo
from rebill.errors import ConfigurationError, LimiterUnavailable, RateLimitWait
from rebill.limiter import (
    API,
    PAYMENTS,
    PAYMENTS_WINDOW_LIMIT,
    Limiter,
    LimiterConfig,
    api_reserve,
    payments_window_bound,
    read_all_stats,
    state_key,
)
from rebill.redis_server import free_port
from rebill.runtime import Runtime, limiter_config
from rebill.settings import Settings

QUOTA = 150  # Standard and Plus plans
RESERVE = api_reserve(QUOTA, LimiterConfig().other_apps_share)


def no_jitter() -> float:
    return 0.0


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def limiter(redis_client: redis.Redis) -> Limiter:
    return Limiter(redis_client, jitter=no_jitter)


def quota_response(left: int, reset_ms: int, status: int = 200) -> ResponseInfo:
    return ResponseInfo(
        API,
        status,
        {
            "X-Rate-Limit-Requests-Left": str(left),
            "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
            "X-Rate-Limit-Requests-Quota": str(QUOTA),
            "X-Rate-Limit-Time-Window-Ms": "30000",
        },
    )


def admit_until_rejected(limiter: Limiter, store_hash: str) -> tuple[int, float]:
    """Take store API requests one by one; return (admitted, wait when rejected)."""
    admitted = 0
    while True:
        decision = limiter.decide_api(store_hash, QUOTA)
        if not decision.admitted:
            return admitted, decision.wait
        admitted += 1
        assert admitted <= QUOTA, "the limiter admitted more than the quota"


def max_in_window(times: list[float], window: float) -> int:
    """Return the max count of times in one closed interval of `window` seconds."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] < moment - window:
            first += 1
        most = max(most, last - first + 1)
    return most


# Payments host: the bound in any 4-second window.


@pytest.mark.parametrize(
    ("rate", "burst", "bound"),
    [(12.0, 1, 49), (12.25, 1, 50), (12.5, 1, 51), (12.5, 0, 50), (10.0, 10, 50)],
    ids=["default", "tightest-rate", "rate-too-high", "no-burst", "big-burst"],
)
def test_window_bound_formula(rate: float, burst: int, bound: int) -> None:
    assert payments_window_bound(rate, burst) == bound


def test_config_rejecting_more_than_50_per_window() -> None:
    with pytest.raises(ConfigurationError, match="admits 51 payments"):
        LimiterConfig(payments_rate=12.5, payments_burst=1).validate()


def test_settings_name_invalid_payments_rate() -> None:
    environ = {"REBILL_PAYMENTS_RATE": "12", "REBILL_PAYMENTS_BURST": "3"}
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env(environ)
    assert "REBILL_PAYMENTS_RATE=12.0" in str(raised.value)
    assert "REBILL_PAYMENTS_BURST=3" in str(raised.value)


def test_settings_reject_share_of_one() -> None:
    with pytest.raises(ConfigurationError, match="REBILL_API_OTHER_APPS_SHARE"):
        Settings.from_env({"REBILL_API_OTHER_APPS_SHARE": "1"})


def run_payments_worker(
    redis_url: str, store_hash: str, count: int
) -> list[tuple[float, float]]:
    """Admit `count` payments in a fresh process, sleeping until each turn.

    Returns (planned send time by the Redis clock, wall-clock time after the
    sleep) for each payment.
    """
    client = redis.Redis.from_url(redis_url)
    limiter = Limiter(client)
    sent = []
    while len(sent) < count:
        try:
            decision = limiter.acquire_payment(store_hash)
        except RateLimitWait:
            continue
        sent.append((decision.decided_at + decision.wait, time.time()))
    client.close()
    return sent


def test_payments_window_bound_across_processes(redis_url: str) -> None:
    # Four processes ask at once for 60 payments in all, about five seconds'
    # worth at 12 per second, so some 4-second window is saturated.
    processes, each = 4, 15
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        results = pool.starmap(
            run_payments_worker, [(redis_url, "busy1", each)] * processes
        )
    planned = [plan for result in results for plan, _ in result]
    woke = [wall for result in results for _, wall in result]
    assert len(planned) == processes * each
    assert max_in_window(planned, 4.0) <= payments_window_bound(12.0, 1)
    # The wall-clock times include each process's wake-up delay, which the one
    # request of slack below 50 absorbs.
    assert max_in_window(woke, 4.0) <= PAYMENTS_WINDOW_LIMIT


def test_payment_turns_are_spaced_by_the_rate(limiter: Limiter) -> None:
    decisions = [limiter.decide_payment("spaced1") for _ in range(5)]
    assert all(decision.admitted for decision in decisions)
    planned = sorted(decision.decided_at + decision.wait for decision in decisions)
    for earlier, later in zip(planned, planned[1:], strict=False):
        assert later - earlier >= 1 / 12 - 1e-6


def test_payment_turn_beyond_max_sleep_deferred(limiter: Limiter) -> None:
    admitted = 0
    decision = limiter.decide_payment("full1")
    while decision.admitted:
        admitted += 1
        decision = limiter.decide_payment("full1")
    assert decision.wait > limiter.config.max_sleep
    stats = limiter.stats("full1")
    assert stats.payments_admitted == admitted
    assert stats.payments_deferrals == 1


# Isolation between stores.


def test_full_payments_bucket_leaves_other_store_alone(limiter: Limiter) -> None:
    while limiter.decide_payment("loud1").admitted:
        pass
    decision = limiter.decide_payment("quiet1")
    assert decision.admitted
    assert decision.wait == 0


def test_api_block_leaves_other_store_alone(limiter: Limiter) -> None:
    limiter.observe("loud1", quota_response(0, 20_000, status=429))
    with pytest.raises(RateLimitWait):
        limiter.acquire_api("loud1", QUOTA)
    assert limiter.acquire_api("quiet1", QUOTA).admitted
    assert limiter.stats("quiet1").api_429 == 0


# Store API quota.


def test_fresh_window_admits_quota_less_reserve(limiter: Limiter) -> None:
    admitted, wait = admit_until_rejected(limiter, "store1")
    assert admitted == QUOTA - RESERVE
    assert 0 < wait <= 30


def test_requests_left_header_lowers_budget(limiter: Limiter) -> None:
    gate = limiter.gate("store1", QUOTA)
    gate.before(API)
    # Other apps took all but 5 of what is left: rebill takes those 5.
    gate.after(quota_response(left=5, reset_ms=20_000))
    admitted, wait = admit_until_rejected(limiter, "store1")
    assert admitted == 5
    assert 10 < wait <= 20


def test_other_apps_use_counts_against_share(limiter: Limiter) -> None:
    gate = limiter.gate("store1", QUOTA)
    gate.before(API)
    # Other apps used exactly their share: rebill's budget is untouched.
    gate.after(quota_response(left=QUOTA - RESERVE - 1, reset_ms=20_000))
    admitted, _ = admit_until_rejected(limiter, "store1")
    assert admitted == QUOTA - RESERVE - 1


def test_response_discounts_later_requests(limiter: Limiter) -> None:
    first = limiter.gate("store1", QUOTA)
    first.before(API)
    for _ in range(3):
        limiter.gate("store1", QUOTA).before(API)
    # BigCommerce saw only the first request when it responded; three more left
    # after it, so 5 left then means 2 now.
    first.after(quota_response(left=5, reset_ms=20_000))
    admitted, _ = admit_until_rejected(limiter, "store1")
    assert admitted == 2


def test_response_from_older_window_ignored(limiter: Limiter) -> None:
    gate = limiter.gate("store1", QUOTA)
    gate.before(API)
    gate.after(quota_response(left=1, reset_ms=25_000))
    gate.before(API)
    # A late response whose window ends within a second belongs to the window
    # before: it must not end the current one early.
    gate.after(quota_response(left=QUOTA - 1, reset_ms=500))
    admitted, wait = admit_until_rejected(limiter, "store1")
    assert admitted == 0
    assert wait > 10


def test_reservation_is_spent_before_new_requests(limiter: Limiter) -> None:
    gate = limiter.gate("store1", QUOTA)
    gate.admit_renewal(3, ticket="1")
    for _ in range(3):
        gate.before(API)
    assert gate.credit == 0
    assert limiter.stats("store1").api_admitted == 3
    gate.before(API)
    assert limiter.stats("store1").api_admitted == 4


def test_renewal_deferred_when_window_used(redis_client: redis.Redis) -> None:
    slept: list[float] = []
    limiter = Limiter(redis_client, sleep=slept.append)
    limiter.observe("store1", quota_response(left=1, reset_ms=20_000))
    with pytest.raises(RateLimitWait) as raised:
        limiter.gate("store1", QUOTA).admit_renewal(2, ticket="1")
    assert 10 < raised.value.seconds <= 20
    assert slept == []


# Renewal admission: start times spaced by the budget and the payments rate.


def test_renewals_start_spaced_by_budget(redis_client: redis.Redis) -> None:
    slept: list[float] = []
    limiter = Limiter(redis_client, sleep=slept.append)
    spacing = 3 * 30 / (QUOTA - RESERVE)  # 3 requests of 135 per 30 s
    limiter.gate("store1", QUOTA).admit_renewal(3, ticket="1")
    limiter.gate("store1", QUOTA).admit_renewal(3, ticket="2")
    with pytest.raises(RateLimitWait) as raised:
        limiter.gate("store1", QUOTA).admit_renewal(3, ticket="3")
    assert slept[0] <= spacing
    assert slept[0] > spacing - 0.5
    assert raised.value.seconds <= 2 * spacing
    assert raised.value.seconds > 2 * spacing - 0.5


def test_payments_rate_spaces_busy_store(redis_client: redis.Redis) -> None:
    slept: list[float] = []
    limiter = Limiter(redis_client, sleep=slept.append)
    for ticket in range(3):
        limiter.gate("big1", 30_000).admit_renewal(2, ticket=str(ticket))
    # 30,000 per 30 s would allow far more; 12 payments per second space them.
    assert slept[0] <= 1 / 12
    assert slept[1] <= 2 / 12
    assert slept[1] > slept[0]


def test_deferred_renewal_keeps_its_place(redis_client: redis.Redis) -> None:
    limiter = Limiter(redis_client, sleep=lambda seconds: None)
    for ticket in ("1", "2"):
        limiter.gate("store1", QUOTA).admit_renewal(3, ticket=ticket)
    waits = {}
    for ticket in ("3", "4", "3"):
        with pytest.raises(RateLimitWait) as raised:
            limiter.gate("store1", QUOTA).admit_renewal(3, ticket=ticket)
        waits.setdefault(ticket, []).append(raised.value.seconds)
    first, again = waits["3"]
    assert again <= first
    assert waits["4"][0] > first


# 429s.


def test_429_makes_every_worker_of_store_wait(
    redis_client: redis.Redis, redis_url: str
) -> None:
    one = Limiter(redis_client).gate("store1", QUOTA)
    other_client = redis.Redis.from_url(redis_url)
    other = Limiter(other_client).gate("store1", QUOTA)
    one.before(API)
    one.after(quota_response(left=0, reset_ms=60_000, status=429))
    with pytest.raises(RateLimitWait) as raised:
        other.before(API)
    assert 30 < raised.value.seconds <= 60
    assert raised.value.host == API
    other.before(PAYMENTS)
    other_client.close()


def test_429_blocks_requests_already_reserved(limiter: Limiter) -> None:
    gate = limiter.gate("store1", QUOTA)
    gate.admit_renewal(2, ticket="1")
    limiter.observe("store1", quota_response(left=0, reset_ms=60_000, status=429))
    with pytest.raises(RateLimitWait):
        gate.before(API)


def test_longer_of_reset_and_retry_after_is_waited(limiter: Limiter) -> None:
    headers = {"X-Rate-Limit-Time-Reset-Ms": "3000", "X-Retry-After": "9"}
    wait = limiter.observe("store1", ResponseInfo(API, 429, headers))
    assert wait == 9


def test_bare_429s_back_off_exponentially(
    limiter: Limiter, redis_client: redis.Redis
) -> None:
    bare = ResponseInfo(API, 429, {})
    assert limiter.observe("store1", bare) == 2
    assert limiter.observe("store1", bare) == 4
    assert limiter.observe("store1", bare) == 8
    limiter.observe("store1", quota_response(left=100, reset_ms=20_000))
    assert redis_client.hget(state_key("store1", API), "strikes") == b"0"


def test_payments_429_blocks_payments_of_store(limiter: Limiter) -> None:
    headers = {"X-Rate-Limit-Time-Reset-Ms": "60000"}
    limiter.observe("store1", ResponseInfo(PAYMENTS, 429, headers))
    with pytest.raises(RateLimitWait) as raised:
        limiter.acquire_payment("store1")
    assert raised.value.host == PAYMENTS
    assert 30 < raised.value.seconds <= 60
    assert limiter.stats("store1").payments_429 == 1
    assert limiter.decide_api("store1", QUOTA).admitted


def test_stats_count_429s_waits_and_latency(limiter: Limiter) -> None:
    gate = limiter.gate("store1", QUOTA)
    gate.before(API)
    gate.after(quota_response(left=0, reset_ms=20_000, status=429))
    with pytest.raises(RateLimitWait):
        gate.before(API)
    stats = limiter.stats("store1")
    assert stats.api_429 == 1
    assert stats.api_admitted == 1
    assert stats.api_waits == 1
    assert stats.api_deferrals == 1
    assert 10 < stats.api_wait_seconds <= 20
    assert stats.api_decision_seconds is not None
    assert stats.api_decision_seconds > 0


# Redis outage: fail closed.


@pytest.fixture
def unreachable_limiter(tmp_path: Path) -> Iterator[Limiter]:
    """The limiter a Runtime builds when nothing listens at REBILL_REDIS_URL."""
    settings = replace(
        Settings.from_env({}),
        database_url=f"sqlite:///{tmp_path / 'rebill.db'}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    runtime = Runtime.from_settings(settings)
    yield runtime.limiter
    runtime.close()


@pytest.mark.parametrize("host", [API, PAYMENTS])
def test_unreachable_redis_admits_nothing(
    unreachable_limiter: Limiter, host: str
) -> None:
    gate = unreachable_limiter.gate("store1", QUOTA)
    with pytest.raises(LimiterUnavailable) as raised:
        gate.before(host)
    assert raised.value.host == host
    assert raised.value.seconds > 0
    assert "ConnectionError" in raised.value.reason


def test_unreachable_redis_rejects_reservation(unreachable_limiter: Limiter) -> None:
    with pytest.raises(LimiterUnavailable):
        unreachable_limiter.gate("store1", QUOTA).admit_renewal(3, ticket="1")


def test_after_survives_unreachable_redis(unreachable_limiter: Limiter) -> None:
    gate = unreachable_limiter.gate("store1", QUOTA)
    gate.after(ResponseInfo(PAYMENTS, 201, {}))
    gate.after(quota_response(left=10, reset_ms=1000))


def test_limiter_config_follows_settings() -> None:
    settings = replace(
        Settings.from_env({}), payments_rate=10.0, api_other_apps_share=0.25
    )
    config = limiter_config(settings)
    assert config.payments_rate == 10.0
    assert config.other_apps_share == 0.25


def test_all_stats_list_every_limited_store(
    limiter: Limiter, redis_client: redis.Redis
) -> None:
    limiter.decide_payment("store2")
    limiter.observe("store1", quota_response(left=0, reset_ms=20_000, status=429))

    found = read_all_stats(redis_client)

    assert [stats.store_hash for stats in found] == ["store1", "store2"]
    assert found[0].api_429 == 1
    assert found[1].payments_admitted == 1


def test_duplicate_renewal_takes_no_requests(limiter: Limiter) -> None:
    first = limiter.gate("store1", QUOTA)
    first.admit_renewal(3, ticket="7")
    duplicate = limiter.gate("store1", QUOTA)
    duplicate.admit_renewal(3, ticket="7")

    assert first.credit == 3
    assert duplicate.credit == 0
    assert limiter.stats("store1").api_admitted == 3
