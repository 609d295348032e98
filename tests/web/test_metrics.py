from __future__ import annotations

from datetime import timedelta

import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from models import CycleState, Subscription
from rebill.health import record_tick
from rebill.limiter import stats_key
from rebill.runtime import Runtime
from tests.web.conftest import NOW, StoreKey, new_subscription
from tests.web.test_api import add_cycle


def scrape(client: FlaskClient) -> dict[str, list]:
    response = client.get("/metrics")
    assert response.status_code == 200
    families = text_string_to_metric_families(response.get_data(as_text=True))
    return {family.name: family.samples for family in families}


def value(samples: list, name: str, **labels: str) -> float:
    for sample in samples:
        if sample.name == name and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return sample.value
    raise AssertionError(f"no sample {name} {labels}")


def test_metrics_report_renewals_and_queue(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime, redis_url: str
) -> None:
    created = client.post(
        "/api/v1/subscriptions", json=new_subscription(), headers=store_a.headers
    ).json
    add_cycle(runtime, created["id"], state=CycleState.FAILED, last_error_code=30106)
    add_cycle(
        runtime,
        created["id"],
        state=CycleState.UNKNOWN,
        scheduled_at=NOW - timedelta(hours=5),
    )
    add_cycle(
        runtime,
        created["id"],
        state=CycleState.DUE,
        scheduled_at=NOW - timedelta(hours=3),
    )
    broker = redis.Redis.from_url(redis_url)
    broker.rpush("rebill", "task-1", "task-2")
    record_tick(broker, NOW.timestamp(), host="test-host")
    broker.hset(
        stats_key(store_a.store_hash),
        mapping={"payments_waits": 3, "payments_429": 1, "api_waits": 2},
    )
    broker.close()

    metrics = scrape(client)

    renewals = metrics["rebill_renewals"]
    assert value(renewals, "rebill_renewals", state="failed", code="30106") == 1
    assert value(metrics["rebill_unknown_outcomes"], "rebill_unknown_outcomes") == 1
    age = metrics["rebill_oldest_due_renewal_age_seconds"]
    assert value(age, "rebill_oldest_due_renewal_age_seconds") == 3 * 3600
    attempts = metrics["rebill_charge_attempts"]
    assert (
        value(
            attempts,
            "rebill_charge_attempts_total",
            outcome="soft_decline",
            code="30106",
        )
        == 3
    )
    latency = metrics["rebill_charge_latency_seconds"]
    assert value(latency, "rebill_charge_latency_seconds_count") == 3
    assert value(latency, "rebill_charge_latency_seconds_bucket", le="0.5") == 0
    assert value(latency, "rebill_charge_latency_seconds_bucket", le="1.0") == 3
    assert value(metrics["rebill_queue_depth"], "rebill_queue_depth") == 2
    waits = metrics["rebill_limiter_waits"]
    store = store_a.store_hash
    assert value(waits, "rebill_limiter_waits_total", store=store, host="payments") == 3
    assert value(waits, "rebill_limiter_waits_total", store=store, host="api") == 2
    limited = metrics["rebill_limiter_rate_limited"]
    assert (
        value(
            limited, "rebill_limiter_rate_limited_total", store=store, host="payments"
        )
        == 1
    )
    tick = metrics["rebill_scheduler_last_tick_timestamp_seconds"]
    assert (
        value(tick, "rebill_scheduler_last_tick_timestamp_seconds") == NOW.timestamp()
    )


def test_metrics_without_renewals(client: FlaskClient, runtime: Runtime) -> None:
    metrics = scrape(client)

    age = metrics["rebill_oldest_due_renewal_age_seconds"]
    assert value(age, "rebill_oldest_due_renewal_age_seconds") == 0
    assert value(metrics["rebill_redis_up"], "rebill_redis_up") == 1
    assert "rebill_scheduler_last_tick_timestamp_seconds" not in metrics


def test_tick_cancels_at_period_end(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime
) -> None:
    from scheduler.tick import open_due_cycles

    sid = client.post(
        "/api/v1/subscriptions", json=new_subscription(), headers=store_a.headers
    ).json["id"]
    client.post(
        f"/api/v1/subscriptions/{sid}/cancel?at=period_end", headers=store_a.headers
    )
    with runtime.sessions() as session:
        due_at = session.get(Subscription, sid).next_billing_at

    with runtime.sessions() as session:
        opened = open_due_cycles(session, due_at + timedelta(minutes=1), 100)
        session.commit()

    assert opened == []
    with runtime.sessions() as session:
        assert session.get(Subscription, sid).status == "canceled"


def test_grafana_queries_use_served_metrics(
    client: FlaskClient, store_a: StoreKey, runtime: Runtime, redis_url: str
) -> None:
    import json
    import re
    from pathlib import Path

    sid = client.post(
        "/api/v1/subscriptions", json=new_subscription(), headers=store_a.headers
    ).json["id"]
    add_cycle(runtime, sid, state=CycleState.FAILED, last_error_code=30106)
    broker = redis.Redis.from_url(redis_url)
    record_tick(broker, NOW.timestamp(), host="test-host")
    broker.close()
    served = client.get("/metrics").get_data(as_text=True)
    sample_names = {line.split("{")[0].split(" ")[0] for line in served.splitlines()}
    dashboard = Path(__file__).parents[2] / "docker/grafana/dashboards/rebill.json"
    panels = json.loads(dashboard.read_text())["panels"]

    expressions = [target["expr"] for panel in panels for target in panel["targets"]]
    used = {name for e in expressions for name in re.findall(r"rebill_[a-z0-9_]+", e)}

    assert used
    assert used - sample_names == set()
