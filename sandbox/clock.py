"""The sandbox's clock, which tests move forward instead of sleeping."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sandbox.errors import SetupError


class SandboxClock:
    """Wall and monotonic time plus an offset that `advance` increases.

    Everything time-based in the sandbox reads this clock: PAT expiry, order
    dates and the rate-limit windows. The offset only grows, so the monotonic
    reading never goes back. A frozen clock stops at the moment of `freeze`
    and moves only by `advance`, which makes rate-limit windows deterministic.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: tuple[datetime, float] | None = None

    def now(self) -> datetime:
        """Return the sandbox's current time, timezone-aware in UTC."""
        with self._lock:
            wall = self._frozen_at[0] if self._frozen_at else datetime.now(UTC)
            return wall + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        """Return seconds on a monotonic scale that includes the offset."""
        with self._lock:
            base = self._frozen_at[1] if self._frozen_at else time.monotonic()
            return base + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`; a negative value raises SetupError."""
        if seconds < 0:
            raise SetupError(
                f"cannot move the clock back: advance_seconds={seconds}; "
                "pass zero or a positive number"
            )
        with self._lock:
            self._offset += seconds

    def freeze(self) -> None:
        """Stop the clock at the current moment; `advance` still moves it."""
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = (datetime.now(UTC), time.monotonic())

    def unfreeze(self) -> None:
        """Let the clock follow real time again, from a later reading."""
        with self._lock:
            self._frozen_at = None
