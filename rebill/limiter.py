"""BigCommerce's two rate limits, enforced for every worker at once through Redis.

BigCommerce limits each store twice:

- The payments host accepts at most 50 POST /payments per store in any
  4-second window.
- The store API (orders, payment methods, PATs) allows a quota of requests per
  30-second window: 150 on Standard and Plus, 450 on Pro, a custom number on
  Enterprise. Every app installed on the store draws on the same quota, and
  each response reports what is left in X-Rate-Limit-Requests-Left and when the
  window resets in X-Rate-Limit-Time-Reset-Ms.

Every decision is one Lua script run in Redis with Redis TIME as its only clock,
so any number of worker processes on any number of machines share one count and
no clock skew between machines matters. Each store has its own keys, which
expire once the store is idle. Redis 5 or newer is needed, because the scripts
write after reading TIME.

Payments host: a token bucket kept in GCRA form (one "theoretical arrival time"
per store). With rate r per second and burst b it admits at most
b + floor(r * T) requests in any closed interval of T seconds, so b + 4r <= 50
keeps every 4-second window at or below 50. The default, r = 12 and b = 1,
admits 49 per window, 96 % of 12.5 per second. The one request of slack below
50 absorbs up to 1/6 s of difference between two requests in the time from
decision to arrival at BigCommerce. A request whose turn comes within
`max_sleep` gets that turn reserved, and the caller sleeps until it. A later
turn is not reserved: the request raises RateLimitWait, so the worker thread is
given back.

Store API: the limiter tracks, per store, the end of the current quota window,
the requests rebill sent in it, and an estimate of the requests left in it for
all apps together. The estimate starts at the store's quota when a window
begins and drops by one for each request admitted. After each response it drops
to the response's Requests-Left minus the requests admitted after the one
responded to. A request is admitted while rebill's own requests stay within the
quota less the share left for other apps, and the estimate stays at 0 or more,
so rebill takes less when other apps take more than their share. After a 429,
every worker of the store waits until the reset time the response gives, or an
exponential backoff when it gives none.

Renewals: a renewal takes all the store API requests it expects in one decision
before it claims its cycle (admit_renewal). Renewals of a store get start times
spaced by their requests over the budget per window, or by the payments rate if
that is slower, so a window opening does not release a burst of payments that
the payments host would defer after their PATs were minted. A renewal whose
start is further away than `max_sleep` is deferred with a ticket (its cycle id)
that keeps its start time, so deferred renewals come back one by one.

NOTE: the pacing assumes a renewal makes the requests it reserved. Requests it
makes beyond them are admitted one at a time against the window, unpaced.

Failing closed: when Redis cannot be reached, before() raises LimiterUnavailable
(a RateLimitWait), so no request and above all no payment is sent. after()
never raises for Redis errors, because the response it handles has already
arrived and must be recorded.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from rebill.client import ResponseInfo
from rebill.errors import ConfigurationError, LimiterUnavailable, RateLimitWait

logger = logging.getLogger(__name__)

API = "api"
PAYMENTS = "payments"

PAYMENTS_WINDOW_SECONDS = 4.0
PAYMENTS_WINDOW_LIMIT = 50
API_WINDOW_SECONDS = 30.0

# Wait after a 429 that carries no reset time: 2 s doubling per 429 in a row up
# to 60 s, of which a random part of up to one half is taken off (jitter).
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 60.0
# Shortest wait after any 429, so a reset time of 0 does not cause a tight loop.
MIN_429_WAIT_SECONDS = 0.25
# Wait given back to a renewal while Redis cannot be reached.
REDIS_DOWN_WAIT_SECONDS = 30.0
# Counters of a store stay this long after its last limiter decision.
STATS_TTL_SECONDS = 7 * 24 * 3600
# Maximum number of short sleeps before() makes for one store API request.
MAX_API_SLEEPS = 3
# A renewal that comes back within this time after its start time keeps it.
RENEWAL_GRACE_SECONDS = 10.0
# A renewal delivered again within this time after its admission is admitted
# without taking requests: a duplicate, or a retry after a short wait.
RENEWAL_MEMORY_SECONDS = 60.0

MICROSECONDS = 1_000_000


# Helpers shared by every script. Times are integer microseconds of Redis TIME.
# Numbers are written with %.0f because Redis turns a Lua number argument into
# text with 14 significant digits, which would round a microsecond timestamp.
LUA_PRELUDE = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function num(value, default)
  if value == false or value == nil or value == '' then return default end
  return tonumber(value)
end
local function int(value)
  return string.format('%.0f', value)
end
-- Count a request made to wait: a short sleep, or a deferral that gives the
-- worker thread back.
local function count_wait(stats, host, wait, ttl, deferred)
  redis.call('HINCRBY', stats, host .. '_waits', 1)
  redis.call('HINCRBY', stats, host .. '_wait_us', int(wait))
  if deferred then redis.call('HINCRBY', stats, host .. '_deferrals', 1) end
  redis.call('EXPIRE', stats, ttl)
end
local function count_admitted(stats, host, count, ttl)
  redis.call('HINCRBY', stats, host .. '_admitted', count)
  redis.call('EXPIRE', stats, ttl)
end
-- Block a host of a store after a 429 and return the wait in microseconds.
-- ARGV 2 to 7: reset_ms, retry_after_s ('' when absent), backoff base and max
-- (us), jitter in [0, 1), shortest wait (us).
local function block_after_429(key, now)
  local reset_ms, retry_s = num(ARGV[2], nil), num(ARGV[3], nil)
  local wait
  if reset_ms or retry_s then
    wait = math.max((reset_ms or 0) * 1000, (retry_s or 0) * 1000000)
    redis.call('HSET', key, 'strikes', 0)
  else
    local strikes = redis.call('HINCRBY', key, 'strikes', 1)
    local base, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
    wait = math.min(cap, base * 2 ^ (strikes - 1))
    wait = wait - wait * 0.5 * tonumber(ARGV[6])
  end
  wait = math.max(wait, tonumber(ARGV[7]))
  local blocked = math.max(num(redis.call('HGET', key, 'blocked_until'), 0), now + wait)
  redis.call('HSET', key, 'blocked_until', int(blocked))
  return blocked - now
end
"""

# KEYS: payments state, stats. ARGV: interval (us), burst tolerance (us),
# longest sleep (us), stats ttl (s).
# Returns {admitted (0/1), wait (us), now (us)}: the wait is the sleep before
# sending when admitted, the time until the next free turn when not.
PAYMENTS_DECIDE = (
    LUA_PRELUDE
    + """
local now = now_us()
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_sleep, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tat', 'blocked_until')
local tat = math.max(num(state[1], 0), now)
local send_at = math.max(now, tat - tolerance, num(state[2], 0))
local wait = send_at - now
if wait > max_sleep then
  count_wait(KEYS[2], 'payments', wait, ttl, true)
  return {0, wait, now}
end
local next_tat = math.max(tat, send_at) + interval
redis.call('HSET', KEYS[1], 'tat', int(next_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((next_tat - now) / 1000) + 1000)
count_admitted(KEYS[2], 'payments', 1, ttl)
if wait > 0 then count_wait(KEYS[2], 'payments', wait, ttl, false) end
return {1, wait, now}
"""
)

# Store API helpers. A store's API state is a hash: window_end, left (estimate
# for all apps), used (rebill's requests in the window), blocked_until,
# sequence and known (whether window_end came from a response).
API_PRELUDE = """
-- Return the wait (us) left of a block after a 429, counting it, or 0.
local function api_blocked(key, stats, now, ttl, max_sleep)
  local blocked = num(redis.call('HGET', key, 'blocked_until'), 0)
  if blocked <= now then return 0 end
  count_wait(stats, 'api', blocked - now, ttl, blocked - now > max_sleep)
  return blocked - now
end
-- Take `count` requests from the store's window if rebill's budget and the
-- requests left allow. Returns admitted (bool), wait (us) and the sequence.
local function take_from_window(key, stats, now, quota, budget, count, window,
    ttl, max_sleep)
  local state = redis.call('HMGET', key,
    'window_end', 'left', 'used', 'sequence', 'known')
  local window_end, left, used = num(state[1], 0), num(state[2], 0), num(state[3], 0)
  local sequence, known = num(state[4], 0), num(state[5], 0)
  if window_end <= now then
    window_end, left, used, known = now + window, quota, 0, 0
  end
  local admitted = used + count <= budget and left - count >= 0
  if admitted then
    left, used, sequence = left - count, used + count, sequence + count
    count_admitted(stats, 'api', count, ttl)
  else
    count_wait(stats, 'api', window_end - now, ttl, window_end - now > max_sleep)
  end
  redis.call('HSET', key, 'window_end', int(window_end), 'left', left,
    'used', used, 'sequence', int(sequence), 'known', known)
  redis.call('PEXPIRE', key, math.ceil((window_end - now) / 1000) + 60000)
  if admitted then return true, 0, sequence end
  return false, window_end - now, sequence
end
"""

# KEYS: api state, stats. ARGV: quota, budget, count, window (us), stats ttl
# (s), mode, max sleep (us). The budget is the quota less the share left for
# other apps. Mode 'take' admits `count` requests. Mode 'check' only honours a
# block after a 429, for requests an earlier admission took. The max sleep is
# the longest wait the caller sleeps through: a longer wait counts as a
# deferral.
# Returns {admitted (0/1), wait (us), sequence, now (us)}: sequence numbers
# every request admitted for the store, so after() can tell how many went out
# after the one a response belongs to.
API_DECIDE = (
    LUA_PRELUDE
    + API_PRELUDE
    + """
local now = now_us()
local quota, budget, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, ttl, mode = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local max_sleep = tonumber(ARGV[7])
local blocked = api_blocked(KEYS[1], KEYS[2], now, ttl, max_sleep)
local sequence = num(redis.call('HGET', KEYS[1], 'sequence'), 0)
if blocked > 0 then return {0, blocked, sequence, now} end
if mode == 'check' then return {1, 0, sequence, now} end
local admitted, wait
admitted, wait, sequence = take_from_window(KEYS[1], KEYS[2], now, quota, budget,
  count, window, ttl, max_sleep)
return {admitted and 1 or 0, wait, sequence, now}
"""
)

# KEYS: api state, stats, renewal starts (a hash: 'next', and per ticket its
# start time, or minus its start time once admitted). ARGV: quota, budget,
# count, window (us), stats ttl (s), max sleep (us), ticket, spacing (us),
# grace (us), memory (us).
# Admits one renewal: gives it a start time `spacing` after the last one given,
# and takes its `count` store API requests once that time is within the max
# sleep. A renewal deferred with a ticket keeps its start time when it comes
# back (within `grace` of it), so deferred renewals wait in line instead of all
# asking again at once. A ticket admitted less than `memory` ago is admitted
# again without requests, so a duplicate delivery costs no budget.
# Returns {admitted (0/1), wait (us), sequence, now (us), requests taken}: the
# wait is the sleep until the start time when admitted, the time to come back
# when not.
RENEWAL_ADMIT = (
    LUA_PRELUDE
    + API_PRELUDE
    + """
local now = now_us()
local quota, budget, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, ttl, max_sleep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ticket, spacing = ARGV[7], tonumber(ARGV[8])
local grace, memory = tonumber(ARGV[9]), tonumber(ARGV[10])
local blocked = api_blocked(KEYS[1], KEYS[2], now, ttl, max_sleep)
if blocked > 0 then return {0, blocked, 0, now, 0} end
local start = num(redis.call('HGET', KEYS[3], ticket), nil)
if start and start < 0 and now + start < memory then
  return {1, math.max(0, -start - now), 0, now, 0}
end
if not start or start < now - grace then
  start = math.max(num(redis.call('HGET', KEYS[3], 'next'), 0), now)
  local next_start = start + spacing
  redis.call('HSET', KEYS[3], 'next', int(next_start), ticket, int(start))
  redis.call('PEXPIRE', KEYS[3],
    math.ceil((next_start - now + grace + memory) / 1000) + 60000)
end
if start - now > max_sleep then
  count_wait(KEYS[2], 'api', start - now, ttl, true)
  return {0, start - now, 0, now, 0}
end
local admitted, wait, sequence = take_from_window(KEYS[1], KEYS[2], now, quota,
  budget, count, window, ttl, 0)
if not admitted then
  redis.call('HDEL', KEYS[3], ticket)
  return {0, wait, sequence, now, 0}
end
redis.call('HSET', KEYS[3], ticket, int(-start))
if start > now then count_wait(KEYS[2], 'api', start - now, ttl, false) end
return {1, math.max(0, start - now), sequence, now, count}
"""
)

# KEYS: api state, stats. ARGV: status, reset_ms, retry_after_s, backoff base
# (us), backoff max (us), jitter, shortest wait (us), requests left ('' when
# absent), sequence of the request responded to, window (us), decision latency
# (us), stats ttl (s).
# Returns the wait (us) imposed on the store, 0 unless the response was a 429.
API_OBSERVE = (
    LUA_PRELUDE
    + """
local now = now_us()
local status, ttl = tonumber(ARGV[1]), tonumber(ARGV[12])
redis.call('HSET', KEYS[2], 'api_decision_us', ARGV[11])
redis.call('EXPIRE', KEYS[2], ttl)
local window = tonumber(ARGV[10])
if status == 429 then
  redis.call('HINCRBY', KEYS[2], 'api_429', 1)
  local wait = block_after_429(KEYS[1], now)
  local window_end = math.max(num(redis.call('HGET', KEYS[1], 'window_end'), 0),
    now + wait)
  redis.call('HSET', KEYS[1], 'left', 0, 'window_end', int(window_end), 'known', 1)
  redis.call('PEXPIRE', KEYS[1], math.ceil(wait / 1000) + 60000)
  return wait
end
local reported, reset_ms = num(ARGV[8], nil), num(ARGV[2], nil)
if redis.call('HEXISTS', KEYS[1], 'strikes') == 1 then
  redis.call('HSET', KEYS[1], 'strikes', 0)
end
if not reported or not reset_ms then return 0 end
local state = redis.call('HMGET', KEYS[1],
  'window_end', 'left', 'used', 'sequence', 'known')
local window_end, left, used = num(state[1], 0), num(state[2], 0), num(state[3], 0)
local sequence, known = num(state[4], 0), num(state[5], 0)
local response_end = now + reset_ms * 1000
-- Requests admitted after the responded one, which BigCommerce had not yet
-- counted in the Requests-Left it reported.
local since = math.max(0, sequence - tonumber(ARGV[9]))
local corrected = reported - since
if window_end <= now or (known == 1 and response_end > window_end + window / 2) then
  -- A window newer than the one on record: it holds the responded request and
  -- those admitted after it.
  window_end, left, used = response_end, corrected, since + 1
elseif known == 0 then
  -- The window on record was assumed when the last one ran out: take its end.
  window_end, left = response_end, math.min(left, corrected)
elseif response_end >= window_end - window / 2 then
  window_end, left = math.min(window_end, response_end), math.min(left, corrected)
else
  return 0  -- a late response from an older window
end
redis.call('HSET', KEYS[1], 'window_end', int(window_end), 'left', left,
  'used', used, 'known', 1)
redis.call('PEXPIRE', KEYS[1], math.ceil((window_end - now) / 1000) + 60000)
return 0
"""
)

# KEYS: payments state, stats. ARGV: status, reset_ms, retry_after_s, backoff
# base (us), backoff max (us), jitter, shortest wait (us), decision latency
# (us), stats ttl (s). Returns the wait (us) imposed after a 429, or 0.
PAYMENTS_OBSERVE = (
    LUA_PRELUDE
    + """
local now = now_us()
local status, ttl = tonumber(ARGV[1]), tonumber(ARGV[9])
redis.call('HSET', KEYS[2], 'payments_decision_us', ARGV[8])
redis.call('EXPIRE', KEYS[2], ttl)
if status == 429 then
  redis.call('HINCRBY', KEYS[2], 'payments_429', 1)
  local wait = block_after_429(KEYS[1], now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(wait / 1000) + 60000)
  return wait
end
if redis.call('HEXISTS', KEYS[1], 'strikes') == 1 then
  redis.call('HSET', KEYS[1], 'strikes', 0)
end
return 0
"""
)


@dataclass(frozen=True)
class LimiterConfig:
    """Parameters of the limiter, the same for every store (see the module doc)."""

    payments_rate: float = 12.0  # admitted POST /payments per second
    payments_burst: int = 1  # payments that may leave at once after a pause
    other_apps_share: float = 0.1  # part of the store API quota left unused
    max_sleep: float = 1.0  # seconds a thread may sleep before a request

    def validate(self) -> None:
        """Raise ConfigurationError unless every 4-second window stays within 50."""
        if self.payments_rate <= 0:
            raise ConfigurationError(
                f"payments rate {self.payments_rate} is invalid: it must be > 0"
            )
        if self.payments_burst < 1:
            raise ConfigurationError(
                f"payments burst {self.payments_burst} is invalid: it must be >= 1"
            )
        bound = payments_window_bound(self.payments_rate, self.payments_burst)
        if bound > PAYMENTS_WINDOW_LIMIT:
            raise ConfigurationError(
                f"payments rate {self.payments_rate}/s with burst "
                f"{self.payments_burst} admits {bound} payments in some 4 s "
                f"window, more than BigCommerce's {PAYMENTS_WINDOW_LIMIT}; lower "
                "them so that burst + rate x 4 <= 50"
            )
        if not 0 <= self.other_apps_share < 1:
            raise ConfigurationError(
                f"other apps' share {self.other_apps_share} is invalid: use a "
                "fraction from 0 up to, not including, 1"
            )
        if self.max_sleep < 0:
            raise ConfigurationError(
                f"max sleep {self.max_sleep} s is invalid: it must be >= 0"
            )


def payments_window_bound(
    rate: float, burst: int, window: float = PAYMENTS_WINDOW_SECONDS
) -> int:
    """Return the most payments the bucket admits in any closed `window` seconds."""
    return burst + math.floor(rate * window + 1e-9)


def api_reserve(quota: int, other_apps_share: float) -> int:
    """Return how many requests of each window are left for other apps."""
    return math.ceil(quota * other_apps_share - 1e-9)


def backoff_jitter() -> float:
    """Return a random fraction for the backoff after a 429 without reset time."""
    return random.random()


@dataclass(frozen=True)
class Decision:
    """The result of one decision script."""

    admitted: bool
    wait: float  # seconds: sleep before sending if admitted, else time to wait
    sequence: int  # store API only: number of the last request admitted
    latency: float  # seconds the script call took, network included
    decided_at: float  # Redis TIME of the decision, seconds since the epoch
    requests: int = 0  # renewal admission only: store API requests taken


@dataclass(frozen=True)
class LimiterStats:
    """Counters of one store since its keys were created (they expire when idle)."""

    store_hash: str
    api_admitted: int = 0
    api_429: int = 0
    api_waits: int = 0  # requests that waited, by sleeping or by deferral
    api_deferrals: int = 0  # waits too long to sleep: the renewal was given back
    api_wait_seconds: float = 0.0
    api_decision_seconds: float | None = None  # latency of the last decision
    payments_admitted: int = 0
    payments_429: int = 0
    payments_waits: int = 0
    payments_deferrals: int = 0
    payments_wait_seconds: float = 0.0
    payments_decision_seconds: float | None = None

    @classmethod
    def from_hash(cls, store_hash: str, raw: Mapping[bytes, bytes]) -> LimiterStats:
        values = {key.decode(): int(value) for key, value in raw.items()}

        def seconds(name: str) -> float | None:
            found = values.get(name)
            return None if found is None else found / MICROSECONDS

        return cls(
            store_hash=store_hash,
            api_admitted=values.get("api_admitted", 0),
            api_429=values.get("api_429", 0),
            api_waits=values.get("api_waits", 0),
            api_deferrals=values.get("api_deferrals", 0),
            api_wait_seconds=values.get("api_wait_us", 0) / MICROSECONDS,
            api_decision_seconds=seconds("api_decision_us"),
            payments_admitted=values.get("payments_admitted", 0),
            payments_429=values.get("payments_429", 0),
            payments_waits=values.get("payments_waits", 0),
            payments_deferrals=values.get("payments_deferrals", 0),
            payments_wait_seconds=values.get("payments_wait_us", 0) / MICROSECONDS,
            payments_decision_seconds=seconds("payments_decision_us"),
        )


def state_key(store_hash: str, host: str) -> str:
    """Return the Redis key of a store's limiter state for one host.

    The braces make Redis Cluster keep all keys of a store in one slot, which a
    script touching several of them needs.
    """
    return f"rebill:limiter:{{{store_hash}}}:{host}"


def stats_key(store_hash: str) -> str:
    return f"rebill:limiter:{{{store_hash}}}:stats"


def starts_key(store_hash: str) -> str:
    return f"rebill:limiter:{{{store_hash}}}:starts"


STATS_KEY_PATTERN = "rebill:limiter:{*}:stats"


def read_stats(client: redis.Redis, store_hash: str) -> LimiterStats:
    """Return one store's counters (zeros for a store never limited)."""
    raw = client.hgetall(stats_key(store_hash))
    return LimiterStats.from_hash(store_hash, raw)  # type: ignore[arg-type]


def read_all_stats(client: redis.Redis) -> list[LimiterStats]:
    """Return the counters of every store that has any, sorted by store hash.

    Raises redis.RedisError when Redis cannot be reached.
    """
    found = []
    for key in client.scan_iter(match=STATS_KEY_PATTERN, count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        store_hash = name[name.index("{") + 1 : name.rindex("}")]
        found.append(read_stats(client, store_hash))
    return sorted(found, key=lambda stats: stats.store_hash)


class Limiter:
    """Decides, for every worker at once, when a store's next request may go.

    Safe to share between threads: it keeps no state of its own beyond the
    Redis client, whose connection pool is thread-safe.
    """

    def __init__(
        self,
        client: redis.Redis,
        config: LimiterConfig | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = backoff_jitter,
    ) -> None:
        self.client = client
        self.config = config or LimiterConfig()
        self.config.validate()
        self.sleep = sleep
        self._jitter = jitter
        self._payments_decide = client.register_script(PAYMENTS_DECIDE)
        self._api_decide = client.register_script(API_DECIDE)
        self._renewal_admit = client.register_script(RENEWAL_ADMIT)
        self._api_observe = client.register_script(API_OBSERVE)
        self._payments_observe = client.register_script(PAYMENTS_OBSERVE)

    def gate(self, store_hash: str, api_quota: int) -> StoreGate:
        """Return a RequestGate for one renewal of the store."""
        return StoreGate(self, store_hash, api_quota)

    def decide_payment(self, store_hash: str) -> Decision:
        """Run one payments-host decision, reserving the turn if it comes soon."""
        interval = MICROSECONDS / self.config.payments_rate
        arguments = [
            round(interval),
            round(interval * (self.config.payments_burst - 1)),
            round(self.config.max_sleep * MICROSECONDS),
            STATS_TTL_SECONDS,
        ]
        result, wait, latency = self._run(
            self._payments_decide,
            store_hash,
            PAYMENTS,
            [state_key(store_hash, PAYMENTS), stats_key(store_hash)],
            arguments,
        )
        return Decision(
            bool(result[0]), wait, 0, latency, int(result[2]) / MICROSECONDS
        )

    def acquire_payment(self, store_hash: str) -> Decision:
        """Admit one POST /payments, sleeping until its turn.

        Raises RateLimitWait when the turn is more than `max_sleep` away, and
        LimiterUnavailable when Redis cannot be reached.
        """
        decision = self.decide_payment(store_hash)
        if not decision.admitted:
            raise RateLimitWait(store_hash, PAYMENTS, decision.wait)
        if decision.wait > 0:
            self.sleep(decision.wait)
        return decision

    def decide_api(
        self,
        store_hash: str,
        quota: int,
        count: int = 1,
        *,
        check_only: bool = False,
        max_sleep: float | None = None,
    ) -> Decision:
        """Run one store API decision for `count` requests (no sleeping).

        `max_sleep` (default: the config's) is the longest wait the caller will
        sleep through; the counters record a longer one as a deferral.
        """
        if max_sleep is None:
            max_sleep = self.config.max_sleep
        arguments = [
            quota,
            quota - api_reserve(quota, self.config.other_apps_share),
            count,
            round(API_WINDOW_SECONDS * MICROSECONDS),
            STATS_TTL_SECONDS,
            "check" if check_only else "take",
            round(max_sleep * MICROSECONDS),
        ]
        result, wait, latency = self._run(
            self._api_decide,
            store_hash,
            API,
            [state_key(store_hash, API), stats_key(store_hash)],
            arguments,
        )
        return Decision(
            bool(result[0]),
            wait,
            int(result[2]),
            latency,
            int(result[3]) / MICROSECONDS,
        )

    def admit_renewal(
        self, store_hash: str, quota: int, count: int, ticket: str
    ) -> Decision:
        """Run one admission decision for a renewal making `count` API requests.

        Renewals of a store start one after another, spaced so that their API
        requests use the store's budget evenly over each window and their
        payments stay within the payments host's rate. `ticket` names the
        renewal (its cycle id), so a deferred renewal keeps its place.
        """
        budget = quota - api_reserve(quota, self.config.other_apps_share)
        spacing = max(
            count * API_WINDOW_SECONDS / budget, 1 / self.config.payments_rate
        )
        arguments = [
            quota,
            budget,
            count,
            round(API_WINDOW_SECONDS * MICROSECONDS),
            STATS_TTL_SECONDS,
            round(self.config.max_sleep * MICROSECONDS),
            ticket,
            round(spacing * MICROSECONDS),
            round(RENEWAL_GRACE_SECONDS * MICROSECONDS),
            round(RENEWAL_MEMORY_SECONDS * MICROSECONDS),
        ]
        keys = [
            state_key(store_hash, API),
            stats_key(store_hash),
            starts_key(store_hash),
        ]
        result, wait, latency = self._run(
            self._renewal_admit, store_hash, API, keys, arguments
        )
        return Decision(
            bool(result[0]),
            wait,
            int(result[2]),
            latency,
            int(result[3]) / MICROSECONDS,
            requests=int(result[4]),
        )

    def acquire_api(
        self, store_hash: str, quota: int, count: int = 1, *, check_only: bool = False
    ) -> Decision:
        """Admit `count` store API requests, sleeping briefly if that is enough.

        With `check_only` nothing is counted: the call only waits out a block
        after a 429, for requests counted by an earlier acquire. Raises
        RateLimitWait when the wait is longer than `max_sleep`.
        """
        for _ in range(MAX_API_SLEEPS):
            decision = self.decide_api(store_hash, quota, count, check_only=check_only)
            if decision.admitted:
                return decision
            if decision.wait > self.config.max_sleep:
                break
            self.sleep(decision.wait)
        raise RateLimitWait(store_hash, API, decision.wait)

    def observe(
        self,
        store_hash: str,
        info: ResponseInfo,
        *,
        sequence: int = 0,
        latency: float = 0.0,
    ) -> float:
        """Learn from one response and return the wait a 429 imposed (else 0).

        `sequence` is the Decision.sequence of the store API request responded to,
        `latency` the time its decision took (kept as the store's last one).
        """
        headers = RateLimitHeaders.parse(info.headers)
        common = [
            info.status,
            _text(headers.reset_ms),
            _text(headers.retry_after),
            round(BACKOFF_BASE_SECONDS * MICROSECONDS),
            round(BACKOFF_MAX_SECONDS * MICROSECONDS),
            self._jitter(),
            round(MIN_429_WAIT_SECONDS * MICROSECONDS),
        ]
        latency_us = round(latency * MICROSECONDS)
        if info.host == PAYMENTS:
            script = self._payments_observe
            arguments = [*common, latency_us, STATS_TTL_SECONDS]
        else:
            script = self._api_observe
            arguments = [
                *common,
                _text(headers.left),
                sequence,
                round(API_WINDOW_SECONDS * MICROSECONDS),
                latency_us,
                STATS_TTL_SECONDS,
            ]
        keys = [state_key(store_hash, info.host), stats_key(store_hash)]
        _, wait, _ = self._run(script, store_hash, info.host, keys, arguments)
        if info.status == 429:
            logger.warning(
                "store %s: %s returned HTTP 429, so the store's workers wait %.2f s",
                store_hash,
                info.host,
                wait,
            )
        return wait

    def stats(self, store_hash: str) -> LimiterStats:
        """Return the store's counters (zeros for a store never limited)."""
        return read_stats(self.client, store_hash)

    def _run(
        self,
        script: Any,
        store_hash: str,
        host: str,
        keys: list[str],
        arguments: list[Any],
    ) -> tuple[Any, float, float]:
        """Run a script; return (raw result, wait in seconds, call latency)."""
        started = time.perf_counter()
        try:
            result = script(keys=keys, args=arguments)
        except redis.RedisError as error:
            raise LimiterUnavailable(
                store_hash,
                host,
                REDIS_DOWN_WAIT_SECONDS,
                reason=f"{type(error).__name__}: {error}",
            ) from None
        latency = time.perf_counter() - started
        wait_us = result[1] if isinstance(result, list) else result
        return result, int(wait_us) / MICROSECONDS, latency


def _text(value: float | None) -> str:
    return "" if value is None else repr(value)


@dataclass(frozen=True)
class RateLimitHeaders:
    """The rate-limit headers of one response; None where absent or not a number."""

    left: int | None
    reset_ms: float | None
    retry_after: float | None  # seconds

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateLimitHeaders:
        return cls(
            left=_header_number(headers, "X-Rate-Limit-Requests-Left", int),
            reset_ms=_header_number(headers, "X-Rate-Limit-Time-Reset-Ms", float),
            retry_after=_header_number(headers, "X-Retry-After", float),
        )


def _header_number(
    headers: Mapping[str, str], name: str, kind: Callable[[str], Any]
) -> Any:
    raw = _header(headers, name)
    if raw is None:
        return None
    try:
        value = kind(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Look a header up by name, ignoring case even in a plain dict."""
    found = headers.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


class StoreGate:
    """The RequestGate of one store, used by one renewal on one thread.

    `admit_renewal()` takes the store API requests a renewal expects to make
    in one decision, before the renewal claims its cycle. before() then spends
    that credit and only checks whether a 429 has blocked the store since.
    Requests beyond the credit are admitted one at a time.
    """

    def __init__(self, limiter: Limiter, store_hash: str, api_quota: int) -> None:
        self.limiter = limiter
        self.store_hash = store_hash
        self.api_quota = api_quota
        self.credit = 0
        self.last_decision: Decision | None = None
        self._sequence = 0
        self._latency = {API: 0.0, PAYMENTS: 0.0}

    def admit_renewal(self, count: int, ticket: str) -> None:
        """Take the `count` store API requests of a renewal, or raise RateLimitWait.

        Sleeps up to the limiter's max sleep for the renewal's start time, so
        the caller must not hold a database transaction open.
        """
        decision = self.limiter.admit_renewal(
            self.store_hash, self.api_quota, count, ticket
        )
        if not decision.admitted:
            raise RateLimitWait(self.store_hash, API, decision.wait)
        if decision.wait > 0:
            self.limiter.sleep(decision.wait)
        self.credit += decision.requests
        self._remember(API, decision)

    def before(self, host: str) -> None:
        if host == PAYMENTS:
            decision = self.limiter.acquire_payment(self.store_hash)
        elif self.credit > 0:
            # The sequence stays that of the reservation, so after() counts
            # every request admitted since then as possibly ahead of this one.
            decision = self.limiter.acquire_api(
                self.store_hash, self.api_quota, check_only=True
            )
            self.credit -= 1
            self._latency[API] = decision.latency
            self.last_decision = decision
            return
        else:
            decision = self.limiter.acquire_api(self.store_hash, self.api_quota)
        self._remember(host, decision)

    def after(self, info: ResponseInfo) -> None:
        try:
            self.limiter.observe(
                self.store_hash,
                info,
                sequence=self._sequence,
                latency=self._latency.get(info.host, 0.0),
            )
        except LimiterUnavailable as error:
            # The response already arrived and must be recorded, so carry on.
            logger.warning(
                "store %s: rate limiter could not record a %s response (HTTP %d): %s",
                self.store_hash,
                info.host,
                info.status,
                error.reason,
            )

    def _remember(self, host: str, decision: Decision) -> None:
        self.last_decision = decision
        self._latency[host] = decision.latency
        if host == API and decision.sequence:
            self._sequence = decision.sequence
