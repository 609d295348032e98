"""A Celery app whose one task sends POST /payments, paced by Celery's rate_limit.

bench.limiter starts workers of this app to compare Celery's own task rate
limit with rebill's limiter. It is configured from the environment:

- BENCH_REDIS_URL: broker, and the list where each task records its send.
- BENCH_PAYMENTS_URL: root URL of the sandbox's payments host.
- BENCH_STORE_HASH: the store whose payments the tasks send.
- BENCH_RATE_LIMIT: the task's rate_limit, e.g. "12.5/s". Celery applies it in
  each worker process separately (a token bucket of capacity 1 per worker).
- BENCH_RESULTS_KEY: Redis list that receives "<send time> <HTTP status>".
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

from rebill.client import BigCommerceClient, StoreCredentials, StoredInstrument
from rebill.errors import BigCommerceError

QUEUE = "bench_payments"
TASK = "bench.pay"

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_results: redis.Redis | None = None


def results() -> redis.Redis:
    global _results
    if _results is None:
        _results = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _results


@app.task(name=TASK, rate_limit=os.environ.get("BENCH_RATE_LIMIT") or None)
def pay(order_id: int, pat: str, token: str, payment_method_id: str) -> None:
    """Send one payment without any limiter of rebill's and record the result."""
    store_hash = os.environ["BENCH_STORE_HASH"]
    credentials = StoreCredentials(
        store_hash=store_hash,
        access_token="unused-by-the-payments-host",
        api_url="http://127.0.0.1:9",
        payments_url=os.environ["BENCH_PAYMENTS_URL"],
    )
    client = BigCommerceClient(credentials, connect_timeout=5, read_timeout=30)
    instrument = StoredInstrument(payment_method_id, "stored_card", token)
    sent_at = time.time()
    try:
        client.process_payment(order_id, pat, instrument)
        status = 201
    except BigCommerceError as error:
        status = error.http_status or 0
    results().rpush(os.environ["BENCH_RESULTS_KEY"], f"{sent_at} {status}")
