"""Rate limits of the two BigCommerce hosts, on the sandbox's monotonic clock.

- Payments host: at most 50 POST /payments per store in any 4-second window,
  a strict sliding window over the times of admitted requests. BigCommerce
  documents only the limit; the 429 headers that the sandbox sends are its own
  choice.
- Store API: a quota per fixed 30-second window that starts with the first
  request after the previous window ended. Other apps installed on the store
  share the quota; `other_apps_share` of every window is taken by them up front.

The limiters keep no lock of their own: SandboxState calls them under its lock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

PAYMENTS_LIMIT = 50
PAYMENTS_WINDOW_SECONDS = 4.0
API_WINDOW_SECONDS = 30.0


@dataclass(frozen=True)
class Decision:
    """The outcome of one request against a limit."""

    allowed: bool
    quota: int
    left: int
    window_ms: int
    reset_ms: int  # milliseconds until the window frees capacity again

    def headers(self, *, retry_after: bool = True) -> dict[str, str]:
        """Return the X-Rate-Limit-* headers, plus X-Retry-After on a rejection.

        `retry_after` False leaves X-Retry-After out even on a rejection.
        """
        headers = {
            "X-Rate-Limit-Time-Window-Ms": str(self.window_ms),
            "X-Rate-Limit-Time-Reset-Ms": str(self.reset_ms),
            "X-Rate-Limit-Requests-Quota": str(self.quota),
            "X-Rate-Limit-Requests-Left": str(self.left),
        }
        if retry_after and not self.allowed:
            headers["X-Retry-After"] = str(math.ceil(self.reset_ms / 1000))
        return headers


def milliseconds(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))


class SlidingWindowLimiter:
    """At most `limit` admitted requests in any `window` seconds.

    A request admitted at time t counts until t + window, exclusive.
    """

    def __init__(
        self, limit: int = PAYMENTS_LIMIT, window: float = PAYMENTS_WINDOW_SECONDS
    ) -> None:
        self.limit = limit
        self.window = window
        self._admitted: deque[float] = deque()

    def admit(self, now: float) -> Decision:
        """Admit a request at monotonic time `now` unless the window is full."""
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()
        allowed = len(self._admitted) < self.limit
        if allowed:
            self._admitted.append(now)
        reset_ms = milliseconds(self._admitted[0] + self.window - now)
        return Decision(
            allowed=allowed,
            quota=self.limit,
            left=self.limit - len(self._admitted),
            window_ms=milliseconds(self.window),
            reset_ms=reset_ms,
        )


class FixedWindowQuota:
    """A store API quota per fixed window, part of which other apps use."""

    def __init__(
        self,
        quota: int,
        other_apps_share: float = 0.0,
        window: float = API_WINDOW_SECONDS,
    ) -> None:
        self.quota = quota
        self.window = window
        self.other_apps_share = other_apps_share
        self._window_start: float | None = None
        self._used_by_us = 0

    @property
    def used_by_other_apps(self) -> int:
        return math.floor(self.quota * self.other_apps_share)

    def admit(self, now: float) -> Decision:
        """Count a request at monotonic time `now` unless the quota is used up."""
        if self._window_start is None or now >= self._window_start + self.window:
            self._window_start = now
            self._used_by_us = 0
        used = self._used_by_us + self.used_by_other_apps
        allowed = used < self.quota
        if allowed:
            self._used_by_us += 1
            used += 1
        return Decision(
            allowed=allowed,
            quota=self.quota,
            left=max(0, self.quota - used),
            window_ms=milliseconds(self.window),
            reset_ms=milliseconds(self._window_start + self.window - now),
        )
