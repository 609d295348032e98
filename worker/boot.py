"""Worker process start-up and shutdown, wired to Celery's signals.

- `setup_logging`: rebill's handler (REBILL_LOG_LEVEL, REBILL_LOG_FORMAT, ids
  and redaction) replaces the one Celery would install.
- `worker_init`: the start-up checks every role runs (migrated database, a
  secret key that decrypts every store token), after starting Sentry so a
  failure is reported too. A failure stops the worker with exit status 1
  before it takes a task.
- `worker_shutting_down`: SIGTERM starts Celery's warm shutdown, which stops
  taking tasks and waits for the running ones. A watchdog bounds that wait to
  REBILL_SHUTDOWN_TIMEOUT seconds, then exits with status 1. A renewal cut off
  that way is safe: its claim and "payment sent" mark are committed, so the
  scheduler recovers it after REBILL_CHARGE_LEASE and never charges it blind.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from celery import signals

from rebill import logs
from rebill.errors import RebillError
from rebill.settings import Settings, env_name

logger = logging.getLogger(__name__)

EXIT_SHUTDOWN_TIMED_OUT = 1


def connect_signals(settings: Settings) -> None:
    """Connect this module's handlers for a worker running with `settings`."""

    def configure_logging(**_: Any) -> None:
        logs.configure(settings.log_level, settings.log_format)

    def check_start_up(**_: Any) -> None:
        start_up(settings)

    def bound_shutdown(sig: str = "", how: str = "", **_: Any) -> None:
        logger.info("worker: %s received, %s shutdown started", sig, how.lower())
        ShutdownWatchdog(settings.shutdown_timeout).start()

    # Celery keeps weak references by default, and these closures would be
    # collected at once.
    signals.setup_logging.connect(configure_logging, weak=False)
    signals.worker_init.connect(check_start_up, weak=False)
    signals.worker_shutting_down.connect(bound_shutdown, weak=False)


def start_up(settings: Settings) -> None:
    """Run the start-up checks; raise SystemExit(1) with the reason if one fails."""
    from rebill.runtime import process_runtime
    from rebill.sentry import init_sentry
    from rebill.startup import check_ready

    logs.configure(settings.log_level, settings.log_format)
    init_sentry(settings, role="worker")
    try:
        check_ready(process_runtime())
    except RebillError as error:
        logger.error("worker: not starting: %s", error)
        raise SystemExit(1) from None


class ShutdownWatchdog:
    """Ends the process if a warm shutdown outlasts its time limit."""

    _started = threading.Event()

    def __init__(self, timeout: float, exit: Callable[[int], None] = os._exit) -> None:
        self.timeout = timeout
        self._exit = exit

    def start(self) -> None:
        """Start the countdown; later calls in the same process do nothing."""
        if ShutdownWatchdog._started.is_set():
            return
        ShutdownWatchdog._started.set()
        threading.Thread(
            target=self._run, name="rebill-shutdown-watchdog", daemon=True
        ).start()

    def _run(self) -> None:
        threading.Event().wait(self.timeout)
        logger.error(
            "worker: renewals still running after %s=%g s: cycle(s) %s; exiting, "
            "the scheduler recovers them after the charge lease",
            env_name("shutdown_timeout"),
            self.timeout,
            ", ".join(running_cycle_ids()) or "none known",
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._exit(EXIT_SHUTDOWN_TIMED_OUT)


def running_cycle_ids() -> list[str]:
    """Return the cycle ids of the renew tasks this worker is running."""
    from celery.worker.state import active_requests

    return sorted(
        str(request.args[0]) for request in list(active_requests) if request.args
    )
