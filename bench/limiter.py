"""Limiter benchmark: POST /payments for one store from several processes.

    python -m bench.limiter [--seconds 60] [--processes 4] [--threads 4]

Runs the same load once per strategy against the sandbox, which enforces a
strict sliding window of 50 payments per 4 s per store and adds `--latency`
to every response:

- rebill: rebill.limiter's token bucket, through BigCommerceClient.
- limits: the `limits` library's moving window on the same Redis, 50 per 4 s.
- celery RATE POOL: Celery's task rate_limit, in real Celery workers with the
  given pool. Celery applies the limit in each worker separately, so "12.5/s"
  is what the limit reads like and "3.125/s" is that rate split by hand across
  the workers. rebill's own workers use the threads pool.

Each strategy gets its own store and `--processes` processes of `--threads`
threads that send payments as fast as the strategy lets them for `--seconds`.
It prints the max payments sent in any 4 s window (BigCommerce allows 50),
the admitted rate over 12.5 per second, the 429s the sandbox sent, and the p50
and p99 time of one limiter decision. A decision is one Redis script call for
rebill and one hit() for limits. Celery decides inside the worker and exposes
no such time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from bench import celery_payments
from bench.common import (
    PaymentJob,
    machine_line,
    max_in_window,
    milliseconds,
    payment_jobs,
    percentile,
    print_table,
    redis_url,
    sandbox,
)
from rebill.client import (
    BigCommerceClient,
    ResponseInfo,
    StoreCredentials,
    StoredInstrument,
)
from rebill.errors import BigCommerceError, RateLimited, RateLimitWait
from rebill.limiter import PAYMENTS, PAYMENTS_WINDOW_LIMIT, Limiter, StoreGate
from sandbox.server import SandboxServer

FULL_RATE = PAYMENTS_WINDOW_LIMIT / 4  # 12.5 payments per second
STRATEGIES = (
    "rebill",
    "limits",
    "celery 12.5/s prefork",
    "celery 3.125/s prefork",
    "celery 3.125/s threads",
)
# Seconds the sender processes get to import and connect before the start.
START_DELAY = 4.0
API_TOKEN = "bench-limiter-token"


@dataclass
class Sent:
    """One POST /payments: when it left, its HTTP status, the decision time."""

    at: float
    status: int  # 0 when no HTTP response came back
    decision: float | None = None


@dataclass
class Outcome:
    strategy: str
    sent: list[Sent]
    rate_limited: int  # 429s the sandbox sent to the store
    seconds: float
    decisions: list[float] = field(default_factory=list)

    def row(self) -> list[str]:
        start = min((item.at for item in self.sent), default=0.0)
        measured = [item for item in self.sent if item.at <= start + self.seconds]
        paid = sum(1 for item in measured if item.status == 201)
        return [
            self.strategy,
            str(paid),
            str(max_in_window([item.at for item in measured], 4.0)),
            f"{paid / self.seconds / FULL_RATE:.3f}",
            str(self.rate_limited),
            milliseconds(percentile(self.decisions, 0.50)),
            milliseconds(percentile(self.decisions, 0.99)),
        ]


class TimedGate(StoreGate):
    """rebill's gate, noting when each payment leaves and its decision time."""

    sent_at = 0.0

    def before(self, host: str) -> None:
        super().before(host)
        self.sent_at = time.time()


class MovingWindowGate:
    """A RequestGate on the `limits` library's moving window in Redis."""

    def __init__(self, url: str, store_hash: str) -> None:
        from limits import RateLimitItemPerSecond
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        self.limiter = MovingWindowRateLimiter(RedisStorage(url))
        self.item = RateLimitItemPerSecond(PAYMENTS_WINDOW_LIMIT, 4)
        self.store_hash = store_hash
        self.sent_at = 0.0
        self.last_decision_seconds = 0.0

    def before(self, host: str) -> None:
        while True:
            started = time.perf_counter()
            admitted = self.limiter.hit(self.item, self.store_hash)
            self.last_decision_seconds = time.perf_counter() - started
            if admitted:
                break
            reset, _ = self.limiter.get_window_stats(self.item, self.store_hash)
            time.sleep(max(0.001, reset - time.time()))
        self.sent_at = time.time()

    def after(self, info: ResponseInfo) -> None:
        return None


def send_payments(
    strategy: str,
    url: str,
    payments_url: str,
    store_hash: str,
    jobs: list[PaymentJob],
    threads: int,
    start_at: float,
    stop_at: float,
) -> list[tuple[float, int, float | None]]:
    """Send the jobs' payments from `threads` threads; runs in its own process."""
    pending: queue.Queue[PaymentJob] = queue.Queue()
    for job in jobs:
        pending.put(job)
    sent: list[tuple[float, int, float | None]] = []
    lock = threading.Lock()
    client = redis.Redis.from_url(url)
    limiter = Limiter(client)

    def gate() -> TimedGate | MovingWindowGate:
        if strategy == "rebill":
            return TimedGate(limiter, store_hash, api_quota=10_000)
        return MovingWindowGate(url, store_hash)

    def run() -> None:
        payments = gate()
        api = payments_client(store_hash, payments_url, payments)
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < stop_at:
            try:
                job = pending.get_nowait()
            except queue.Empty:
                return
            result = pay_once(api, job, payments)
            if result is not None:
                with lock:
                    sent.append(result)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    client.close()
    return sent


def payments_client(
    store_hash: str, payments_url: str, gate: TimedGate | MovingWindowGate
) -> BigCommerceClient:
    credentials = StoreCredentials(
        store_hash=store_hash,
        access_token=API_TOKEN,
        api_url="http://127.0.0.1:9",
        payments_url=payments_url,
    )
    return BigCommerceClient(credentials, connect_timeout=5, read_timeout=30, gate=gate)


def pay_once(
    api: BigCommerceClient, job: PaymentJob, gate: TimedGate | MovingWindowGate
) -> tuple[float, int, float | None] | None:
    """Send one payment, waiting out deferrals; return (sent at, status, decision)."""
    instrument = StoredInstrument(job.payment_method_id, "stored_card", job.token)
    while True:
        try:
            api.process_payment(job.order_id, job.pat, instrument)
            status = 201
        except RateLimitWait as wait:
            # A worker would queue the renewal again with this delay.
            time.sleep(wait.seconds)
            continue
        except RateLimited:
            status = 429
        except BigCommerceError as error:
            status = error.http_status or 0
        return gate.sent_at, status, decision_seconds(gate)


def decision_seconds(gate: TimedGate | MovingWindowGate) -> float | None:
    if isinstance(gate, MovingWindowGate):
        return gate.last_decision_seconds
    decision = gate.last_decision
    return decision.latency if decision is not None else None


def run_senders(
    strategy: str,
    url: str,
    server: SandboxServer,
    store_hash: str,
    jobs: list[PaymentJob],
    options: argparse.Namespace,
) -> list[Sent]:
    start_at = time.time() + START_DELAY
    stop_at = start_at + options.seconds + 1
    shares = [jobs[index :: options.processes] for index in range(options.processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(options.processes) as pool:
        results = pool.starmap(
            send_payments,
            [
                (
                    strategy,
                    url,
                    server.payments_url,
                    store_hash,
                    share,
                    options.threads,
                    start_at,
                    stop_at,
                )
                for share in shares
            ],
        )
    return [Sent(*item) for result in results for item in result]


def run_celery(
    rate_limit: str,
    pool: str,
    url: str,
    server: SandboxServer,
    store_hash: str,
    jobs: list[PaymentJob],
    options: argparse.Namespace,
) -> list[Sent]:
    """Start Celery workers with the task's rate_limit, queue the jobs, collect."""
    results_key = f"bench:sent:{store_hash}"
    environ = {
        **os.environ,
        "BENCH_REDIS_URL": url,
        "BENCH_PAYMENTS_URL": server.payments_url,
        "BENCH_STORE_HASH": store_hash,
        "BENCH_RATE_LIMIT": rate_limit,
        "BENCH_RESULTS_KEY": results_key,
    }
    workers = [
        start_celery_worker(number, options.threads, pool, environ)
        for number in range(options.processes)
    ]
    try:
        wait_for_celery_workers(url, options.processes)
        celery_payments.app.conf.broker_url = url
        for job in jobs:
            celery_payments.pay.apply_async(
                args=[job.order_id, job.pat, job.token, job.payment_method_id]
            )
        time.sleep(options.seconds + 3)
    finally:
        stop_processes(workers)
    client = redis.Redis.from_url(url)
    raw = client.lrange(results_key, 0, -1)
    client.close()
    sent = []
    for item in raw:
        text = item.decode() if isinstance(item, bytes) else str(item)
        at, status = text.split()
        sent.append(Sent(float(at), int(status)))
    return sent


def start_celery_worker(
    number: int, threads: int, pool: str, environ: dict[str, str]
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "bench.celery_payments", "worker",
        "--pool", pool, "--concurrency", str(threads),
        "--queues", celery_payments.QUEUE, "--hostname", f"bench{number}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    return subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL)


def wait_for_celery_workers(url: str, count: int, timeout: float = 60.0) -> None:
    celery_payments.app.conf.broker_url = url
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = celery_payments.app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return
    raise RuntimeError(f"only some of {count} Celery workers started in {timeout} s")


def stop_processes(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_strategy(
    strategy: str, url: str, server: SandboxServer, options: argparse.Namespace
) -> Outcome:
    store_hash = "bench" + "".join(char for char in strategy if char.isalnum())
    server.state.add_store(store_hash, API_TOKEN, plan="enterprise", api_quota=10_000)
    expected_rate = FULL_RATE * (options.processes if "12.5/s" in strategy else 1)
    count = int(expected_rate * (options.seconds + 2) * 1.3)
    jobs = payment_jobs(server.state, store_hash, count)
    print(
        f"{strategy}: {len(jobs)} payments ready, sending for {options.seconds} s",
        flush=True,
    )
    if strategy.startswith("celery "):
        _, rate_limit, pool = strategy.split()
        sent = run_celery(rate_limit, pool, url, server, store_hash, jobs, options)
    else:
        sent = run_senders(strategy, url, server, store_hash, jobs, options)
    decisions = [item.decision for item in sent if item.decision is not None]
    rate_limited = server.state.rate_limited_counts(store_hash)[PAYMENTS]
    return Outcome(strategy, sent, rate_limited, options.seconds, decisions)


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="run time per strategy, in seconds"
    )
    parser.add_argument(
        "--processes", type=int, default=4, help="sender processes per strategy"
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per sender process"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.15,
        help="seconds the sandbox adds to each response",
    )
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="comma-separated strategies to run",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    strategies = [name.strip() for name in options.strategies.split(",")]
    outcomes = []
    with redis_url() as url, sandbox(options.latency) as server:
        for strategy in strategies:
            redis.Redis.from_url(url).flushdb()
            outcomes.append(run_strategy(strategy, url, server, options))
    print()
    print(
        f"limiter benchmark: one store, {options.processes} processes x "
        f"{options.threads} threads, {options.seconds:g} s per strategy, "
        f"sandbox latency {options.latency * 1000:.0f} ms; {machine_line()}"
    )
    print_table(
        [
            "strategy",
            "payments",
            "max in 4 s",
            "rate / 12.5 per s",
            "429s",
            "p50 decision",
            "p99 decision",
        ],
        [outcome.row() for outcome in outcomes],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
