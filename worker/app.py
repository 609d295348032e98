"""The Celery application and its one task.

The settings are chosen for money. A task is acknowledged only after it ran, so
a task whose worker was killed is delivered again, and the cycle's claim makes
that second delivery harmless. A worker takes one task at a time per thread,
results are not stored, and only JSON is accepted. Long waits never live in Celery:
a retry waits in the database as next_attempt_at and the scheduler queues it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from kombu.exceptions import OperationalError

from rebill import logs
from rebill.errors import ConfigurationError, RateLimitWait
from rebill.runtime import process_runtime
from rebill.settings import Settings, env_name

logger = logging.getLogger(__name__)

RENEW_TASK = "rebill.renew"
QUEUE = "rebill"

# Redis redelivers a task not acknowledged within this time, so it must exceed
# the longest renewal (a few API calls with their timeouts).
VISIBILITY_TIMEOUT_SECONDS = 3600
# Maximum delay given to a task in the broker. Longer waits live in the database.
MAX_COUNTDOWN_SECONDS = 120


def celery_config(settings: Settings) -> dict[str, Any]:
    if not settings.redis_url:
        raise ConfigurationError(
            f"{env_name('redis_url')} is not set: the worker and the scheduler need a "
            "Redis, for example redis://127.0.0.1:6379/0"
        )
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
    }


def make_celery(settings: Settings) -> Celery:
    app = Celery("rebill", set_as_current=False)
    app.config_from_object(celery_config(settings))
    return app


def make_worker_app() -> Celery:
    """Build the app that `celery -A worker worker` runs, with the renew task."""
    from worker.boot import connect_signals

    try:
        settings = Settings.from_env()
        app = make_celery(settings)
    except ConfigurationError as error:
        # Raised while Celery imports the app: exit with the message alone
        # instead of Celery's "unable to load" traceback.
        raise SystemExit(f"rebill worker: not starting: {error}") from None
    connect_signals(settings)

    @app.task(name=RENEW_TASK, acks_late=True, bind=True)
    def renew_task(task: Task, cycle_id: int) -> None:
        from worker.renewal import renew

        try:
            with logs.bound_ids(cycle=cycle_id):
                renew(cycle_id, process_runtime())
        except RateLimitWait as wait:
            queue_after_wait(task, cycle_id, wait)

    return app


def queue_after_wait(task: Task, cycle_id: int, wait: RateLimitWait) -> bool:
    """Queue the renewal again as a delayed task; return whether the broker took it.

    The worker thread is free meanwhile. A wait longer than the longest
    countdown comes back early and waits again. A broker that cannot take the
    task leaves the cycle to the scheduler, which queues it again once its
    next_attempt_at has passed or REBILL_REQUEUE_AFTER has elapsed.
    """
    countdown = min(wait.seconds, MAX_COUNTDOWN_SECONDS)
    try:
        task.apply_async(args=[cycle_id], countdown=countdown)
    except OperationalError as error:
        logger.warning(
            "cycle %d: %s, and queuing it again failed (%s); left to the scheduler",
            cycle_id,
            wait,
            error,
        )
        return False
    logger.info("cycle %d: %s; queued again in %.2f s", cycle_id, wait, countdown)
    return True
