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
    reading never goes back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def now(self) -> datetime:
        """Return the sandbox's current time, timezone-aware in UTC."""
        return datetime.now(UTC) + timedelta(seconds=self.offset())

    def monotonic(self) -> float:
        """Return seconds on a monotonic scale that includes the offset."""
        return time.monotonic() + self.offset()

    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`; a negative value raises SetupError."""
        if seconds < 0:
            raise SetupError(
                f"cannot move the clock back: advance_seconds={seconds}; "
                "pass zero or a positive number"
            )
        with self._lock:
            self._offset += seconds
