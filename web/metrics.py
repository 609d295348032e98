"""Prometheus metrics at /metrics, computed from the database and Redis per scrape.

Every value is read when Prometheus scrapes, so any number of `rebill web`
processes report the same figures and none keeps state. Counters are counts
of rows that are never deleted (charge attempts), so they only grow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.orm import Session

from models import BillingCycle, ChargeAttempt, CycleState, Store
from web.app import WebServices, services
from web.health import celery_queue_length, last_scheduler_tick, limiter_stats

logger = logging.getLogger(__name__)

metrics = Blueprint("metrics", __name__)

# Upper bounds in seconds of the charge latency buckets: from the moment the
# payment request was marked sent to the moment its response was recorded.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@metrics.get("/metrics")
def scrape() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RebillCollector(services()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class RebillCollector(Collector):
    """Reads every rebill metric from the database and Redis on collect()."""

    def __init__(self, web: WebServices) -> None:
        self.web = web

    def collect(self) -> Iterator:
        now = self.web.clock()
        with self.web.runtime.sessions() as session:
            yield renewals_by_state(session)
            yield attempts_by_outcome(session)
            yield rate_limited_attempts(session)
            yield charge_latency(session)
            yield unknown_outcomes(session)
            yield oldest_due_age(session, now)
            store_hashes = list(session.scalars(sa.select(Store.store_hash)))
        if self.web.redis is not None:
            yield from redis_metrics(self.web.redis, store_hashes)


def renewals_by_state(session: Session) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "rebill_renewals",
        "Renewals (billing cycles) by state and last BigCommerce error code.",
        labels=["state", "code"],
    )
    rows = session.execute(
        sa.select(
            BillingCycle.state, BillingCycle.last_error_code, sa.func.count()
        ).group_by(BillingCycle.state, BillingCycle.last_error_code)
    )
    for state, code, count in rows:
        family.add_metric([state, _code_label(code)], count)
    return family


def attempts_by_outcome(session: Session) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "rebill_charge_attempts",
        "Finished charge attempts by outcome class and BigCommerce error code.",
        labels=["outcome", "code"],
    )
    rows = session.execute(
        sa.select(ChargeAttempt.outcome, ChargeAttempt.error_code, sa.func.count())
        .where(ChargeAttempt.finished_at.is_not(None))
        .group_by(ChargeAttempt.outcome, ChargeAttempt.error_code)
    )
    for outcome, code, count in rows:
        family.add_metric([outcome, _code_label(code)], count)
    return family


def rate_limited_attempts(session: Session) -> CounterMetricFamily:
    count = session.scalar(
        sa.select(sa.func.count()).where(ChargeAttempt.http_status == 429)
    )
    return CounterMetricFamily(
        "rebill_charge_attempts_rate_limited",
        "Charge attempts that ended with HTTP 429 from BigCommerce.",
        value=count or 0,
    )


def charge_latency(session: Session) -> HistogramMetricFamily:
    """Histogram of sent-to-finished time of every finished, sent attempt.

    NOTE: one aggregate query over all such attempts per scrape; on a very large
    table, scrape less often or add a time bound.
    """
    seconds = _seconds_between(
        session, ChargeAttempt.payment_sent_at, ChargeAttempt.finished_at
    )
    columns = [
        sa.func.sum(sa.case((seconds <= bound, 1), else_=0))
        for bound in LATENCY_BUCKETS
    ]
    row = session.execute(
        sa.select(sa.func.count(), sa.func.sum(seconds), *columns).where(
            ChargeAttempt.payment_sent_at.is_not(None),
            ChargeAttempt.finished_at.is_not(None),
        )
    ).one()
    total, total_seconds, *cumulative = row
    buckets = [
        (str(bound), int(count or 0))
        for bound, count in zip(LATENCY_BUCKETS, cumulative, strict=True)
    ]
    buckets.append(("+Inf", int(total or 0)))
    return HistogramMetricFamily(
        "rebill_charge_latency_seconds",
        "Time from sending a payment request to recording its answer.",
        buckets=buckets,
        sum_value=float(total_seconds or 0.0),
    )


def _seconds_between(session: Session, start: Any, end: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    return sa.func.extract("epoch", end - start)


def unknown_outcomes(session: Session) -> GaugeMetricFamily:
    count = session.scalar(
        sa.select(sa.func.count()).where(BillingCycle.state == CycleState.UNKNOWN)
    )
    return GaugeMetricFamily(
        "rebill_unknown_outcomes",
        "Renewals whose payment may have been taken and that wait for reconciliation.",
        value=count or 0,
    )


def oldest_due_age(session: Session, now: datetime) -> GaugeMetricFamily:
    """Age of the oldest renewal that a worker should pick up now, 0 if none."""
    due = sa.or_(
        BillingCycle.state.in_((CycleState.DUE, CycleState.ORDER_CREATED)),
        sa.and_(
            BillingCycle.state == CycleState.RETRY_SCHEDULED,
            BillingCycle.next_attempt_at <= now,
        ),
    )
    oldest = session.scalar(
        sa.select(sa.func.min(BillingCycle.scheduled_at)).where(due)
    )
    age = 0.0
    if oldest is not None:
        if oldest.tzinfo is None:  # SQLite's MIN() skips the column type
            oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=now.tzinfo)
        age = max(0.0, (now - oldest).total_seconds())
    return GaugeMetricFamily(
        "rebill_oldest_due_renewal_age_seconds",
        "Time since the oldest renewal that waits for a worker was scheduled.",
        value=age,
    )


def redis_metrics(client: redis.Redis, store_hashes: list[str]) -> Iterator:
    try:
        queue = celery_queue_length(client)
        tick = last_scheduler_tick(client)
        stats = limiter_stats(client, store_hashes)
    except redis.RedisError as error:
        logger.warning("metrics: Redis unreachable, skipping its metrics: %s", error)
        yield GaugeMetricFamily("rebill_redis_up", "1 when Redis answered.", value=0)
        return
    yield GaugeMetricFamily("rebill_redis_up", "1 when Redis answered.", value=1)
    yield GaugeMetricFamily(
        "rebill_queue_depth", "Renew tasks waiting in the Celery queue.", value=queue
    )
    if tick is not None:
        yield GaugeMetricFamily(
            "rebill_scheduler_last_tick_timestamp_seconds",
            "Unix time at which the last scheduler tick finished.",
            value=tick.timestamp(),
        )
    waits = CounterMetricFamily(
        "rebill_limiter_waits",
        "Requests the rate limiter made wait, by store and host.",
        labels=["store", "host"],
    )
    limited = CounterMetricFamily(
        "rebill_limiter_rate_limited",
        "HTTP 429 responses reported to the rate limiter, by store and host.",
        labels=["store", "host"],
    )
    for store_hash, counters in stats.items():
        waits.add_metric([store_hash, "payments"], counters.payments_waits)
        waits.add_metric([store_hash, "api"], counters.api_waits)
        limited.add_metric([store_hash, "payments"], counters.payments_429)
        limited.add_metric([store_hash, "api"], counters.api_429)
    yield waits
    yield limited


def _code_label(code: int | None) -> str:
    return "" if code is None else str(code)
