"""The scheduler process: a tick every REBILL_SCHEDULER_INTERVAL seconds."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from models import utcnow
from rebill.connections import describe_connection_error, qualified_name
from rebill.health import TickMonitor
from rebill.runtime import Runtime
from rebill.sentry import TickCheckIn
from rebill.settings import Settings
from scheduler.tick import Enqueue, TickResult, tick

logger = logging.getLogger(__name__)


def celery_enqueue(runtime: Runtime) -> Enqueue:
    """Return a function that queues the renew task for a cycle id."""
    from worker.app import QUEUE, RENEW_TASK, make_celery

    app = make_celery(runtime.settings)

    def enqueue(cycle_id: int) -> None:
        app.send_task(RENEW_TASK, args=[cycle_id], queue=QUEUE)

    return enqueue


def run_once(runtime: Runtime, enqueue: Enqueue | None = None) -> TickResult:
    """Run one tick and record it as the daemon records each of its ticks.

    A tick that raises is not recorded, so `rebill health scheduler` then fails.
    """
    monitor = TickMonitor(runtime.settings)
    try:
        return run_recorded_tick(
            runtime,
            enqueue or celery_enqueue(runtime),
            monitor,
            TickCheckIn(runtime.settings),
        )
    finally:
        monitor.close()


def run_recorded_tick(
    runtime: Runtime, enqueue: Enqueue, monitor: TickMonitor, check_in: TickCheckIn
) -> TickResult:
    """Run one tick inside a Sentry check-in and record it in Redis if it succeeds."""
    with check_in.tick():
        result = tick(runtime, utcnow(), enqueue)
    monitor.finished()
    return result


def run_forever(runtime: Runtime, enqueue: Enqueue | None = None) -> None:
    """Tick until SIGTERM or SIGINT; a signal stops the loop between ticks."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info(
            "scheduler: %s received, stopping after this tick",
            signal.Signals(signum).name,
        )
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    enqueue = enqueue or celery_enqueue(runtime)
    interval = runtime.settings.scheduler_interval
    monitor = TickMonitor(runtime.settings)
    check_in = TickCheckIn(runtime.settings)
    logger.info("scheduler started: a tick every %.0f s", interval)
    failures = 0
    while not stop.is_set():
        try:
            run_recorded_tick(runtime, enqueue, monitor, check_in)
        except Exception as error:  # the loop outlives any one tick's failure
            failures += 1
            log_failed_tick(error, failures, runtime.settings)
        else:
            if failures:
                logger.info(
                    "scheduler tick succeeded after %d failed tick(s)", failures
                )
            failures = 0
        stop.wait(interval)
    monitor.close()
    logger.info("scheduler stopped")


def log_failed_tick(error: Exception, failures: int, settings: Settings) -> None:
    """Log one line for a failed tick, with the count of failures in a row.

    An unreachable database or Redis gets the setting to check and no
    traceback, because the traceback shows only client library internals and
    would repeat every tick. Any other error is logged with its traceback.
    """
    interval = settings.scheduler_interval
    described = describe_connection_error(error, settings)
    if described is None:
        logger.exception(
            "scheduler tick failed (%d in a row); next tick in %g s",
            failures,
            interval,
        )
        return
    logger.error(
        "scheduler tick failed (%d in a row): %s: %s; next tick in %g s",
        failures,
        qualified_name(error),
        described,
        interval,
    )
