"""Error reports and scheduler check-ins to Sentry, when REBILL_SENTRY_DSN is set.

What becomes a Sentry event: every log record at ERROR (sentry-sdk's logging
integration) and every exception a Celery task lets escape (its Celery
integration). The renewal logs each outcome at the level `outcome_log_level`
gives, so an unknown outcome or a merchant configuration error (which pauses a
store) is reported, and a card decline is only a breadcrumb. `scrub_event`
removes tokens, PATs, card data and instrument tokens from every event and
breadcrumb before it leaves the process. The scheduler's tick reports to a
Sentry cron monitor, which alerts when ticks stop arriving.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from rebill.logs import REDACTED, redactor
from rebill.settings import Settings

if TYPE_CHECKING:
    from sentry_sdk._types import Event, MonitorConfig

logger = logging.getLogger(__name__)

MONITOR_SLUG = "rebill-scheduler-tick"
# Keys whose values are dropped wherever they appear in an event: headers,
# local variables, request data and extra context.
SECRET_KEYS = re.compile(
    r"(?i)(token|pat$|^pat_|secret|password|passwd|authorization|auth|"
    r"api_key|credential|card|number|cvv|cvc|dsn|cookie|session)"
)
# Outcome classes that need a person, so their log lines are errors and reach
# Sentry. The other classes (paid, pending, transient failures, declines) are
# what billing expects to happen and are logged at INFO or WARNING.
REPORTED_OUTCOMES = frozenset(
    {"unknown", "merchant_config", "order_problem", "our_data"}
)


def outcome_log_level(outcome: str) -> int:
    """Return the log level for a renewal ending with `outcome` (a class name)."""
    if outcome in REPORTED_OUTCOMES:
        return logging.ERROR
    if outcome in ("paid", "pending", "not_charged"):
        return logging.INFO
    return logging.WARNING


def init_sentry(settings: Settings, role: str) -> bool:
    """Start sentry-sdk for this process; return False when no DSN is set."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        release=f"rebill@{package_version()}",
        integrations=[
            CeleryIntegration(monitor_beat_tasks=False),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        # Without send_default_pii or data_collection, sentry-sdk 2.76 leaves out
        # personal data and runs its own EventScrubber before scrub_event.
        include_local_variables=True,
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )
    sentry_sdk.set_tag("role", role)
    logger.info(
        "Sentry reporting on for %s (environment %s)", role, settings.sentry_environment
    )
    return True


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rebill")
    except PackageNotFoundError:
        return "unknown"


def scrub_event(event: Event, _hint: dict[str, Any]) -> Event | None:
    """Return the event with every secret value replaced; sentry-sdk's before_send."""
    return cast("Event", scrub(event))


def scrub_breadcrumb(
    crumb: dict[str, Any], _hint: dict[str, Any]
) -> dict[str, Any] | None:
    """Return the breadcrumb with secrets replaced; sentry-sdk's before_breadcrumb."""
    return cast("dict[str, Any]", scrub(crumb))


def scrub(value: Any, key: str = "") -> Any:
    """Replace secrets in a JSON-like value: by key name, then by text shape."""
    if key and SECRET_KEYS.search(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {name: scrub(item, str(name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class TickCheckIn:
    """Reports one scheduler tick to the Sentry cron monitor.

    The monitor expects a check-in every scheduler interval (rounded up to whole
    minutes, the smallest unit Sentry accepts) and marks a tick still running
    after `max_runtime` minutes as failed. Without a DSN every call does nothing.
    """

    def __init__(self, settings: Settings) -> None:
        self.enabled = bool(settings.sentry_dsn)
        minutes = max(1, math.ceil(settings.scheduler_interval / 60))
        self.monitor_config = cast(
            "MonitorConfig",
            {
                "schedule": {"type": "interval", "value": minutes, "unit": "minute"},
                "checkin_margin": max(
                    1, math.ceil(settings.scheduler_stale_after / 60)
                ),
                "max_runtime": max(1, math.ceil(settings.scheduler_stale_after / 60)),
                "failure_issue_threshold": 2,
                "recovery_threshold": 1,
            },
        )

    @contextmanager
    def tick(self) -> Iterator[None]:
        """Send "in_progress" before the block and "ok" or "error" after it."""
        if not self.enabled:
            yield
            return
        check_in_id = capture_checkin(
            monitor_slug=MONITOR_SLUG,
            status="in_progress",
            monitor_config=self.monitor_config,
        )
        try:
            yield
        except BaseException:
            capture_checkin(MONITOR_SLUG, check_in_id, status="error")
            raise
        capture_checkin(MONITOR_SLUG, check_in_id, status="ok")
