"""The scheduler process: a tick every REBILL_SCHEDULER_INTERVAL seconds."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from models import utcnow
from rebill.health import TickMonitor
from rebill.runtime import Runtime
from rebill.sentry import TickCheckIn
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
    return tick(runtime, utcnow(), enqueue or celery_enqueue(runtime))


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
    while not stop.is_set():
        try:
            with check_in.tick():
                tick(runtime, utcnow(), enqueue)
        except Exception:
            logger.exception("scheduler tick failed; next tick in %.0f s", interval)
        else:
            monitor.finished()
        stop.wait(interval)
    monitor.close()
    logger.info("scheduler stopped")
