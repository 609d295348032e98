from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from models import BillingCycle, ChargeAttempt, CycleState, OutcomeClass, Subscription
from rebill.runtime import Runtime
from scheduler.tick import tick
from tests.factories import make_store, make_subscription

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


class Recorder:
    """Collects queued cycle ids, as the broker would."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, cycle_id: int) -> None:
        with self.lock:
            self.ids.append(cycle_id)


def add_due(runtime: Runtime, count: int, *, due_at: datetime = NOW) -> list[int]:
    with runtime.sessions() as session:
        store = make_store(session)
        ids = [
            make_subscription(
                session, store, next_billing_at=due_at, customer_id=100 + i
            ).id
            for i in range(count)
        ]
        session.commit()
    return ids


def cycles(runtime: Runtime) -> list[BillingCycle]:
    with runtime.sessions() as session:
        return list(session.scalars(sa.select(BillingCycle).order_by(BillingCycle.id)))


def test_tick_opens_one_cycle_per_due_subscription(runtime: Runtime) -> None:
    add_due(runtime, 3)
    queued = Recorder()
    result = tick(runtime, NOW, queued)
    opened = cycles(runtime)
    assert len(result.opened) == 3
    assert sorted(queued.ids) == [cycle.id for cycle in opened]
    assert {cycle.state for cycle in opened} == {CycleState.DUE}
    assert {cycle.amount_minor for cycle in opened} == {2000}
    assert all(cycle.queued_at == NOW for cycle in opened)


def test_tick_advances_next_billing_at(runtime: Runtime) -> None:
    (subscription_id,) = add_due(runtime, 1)
    tick(runtime, NOW, Recorder())
    with runtime.sessions() as session:
        subscription = session.get(Subscription, subscription_id)
        assert subscription is not None
        assert subscription.next_billing_at == datetime(2026, 12, 5, 9, tzinfo=UTC)


def test_second_tick_opens_nothing_more(runtime: Runtime) -> None:
    add_due(runtime, 2)
    tick(runtime, NOW, Recorder())
    queued = Recorder()
    result = tick(runtime, NOW + timedelta(seconds=30), queued)
    assert result.opened == []
    assert queued.ids == []
    assert len(cycles(runtime)) == 2


def test_subscription_not_yet_due_is_left_alone(runtime: Runtime) -> None:
    add_due(runtime, 1, due_at=NOW + timedelta(minutes=1))
    result = tick(runtime, NOW, Recorder())
    assert result.opened == []


def test_missed_periods_open_one_cycle(runtime: Runtime) -> None:
    (subscription_id,) = add_due(runtime, 1, due_at=NOW - timedelta(days=10))
    tick(runtime, NOW, Recorder())
    opened = cycles(runtime)
    assert len(opened) == 1
    assert opened[0].scheduled_at == NOW - timedelta(days=10)
    with runtime.sessions() as session:
        subscription = session.get(Subscription, subscription_id)
        assert subscription is not None
        assert subscription.next_billing_at > NOW


def test_concurrent_schedulers_open_each_cycle_once(runtime: Runtime) -> None:
    add_due(runtime, 40)
    runtime.settings = type(runtime.settings)(
        **{**runtime.settings.__dict__, "scheduler_batch_size": 7}
    )
    queued = Recorder()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            tick(runtime, NOW, queued)
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    opened = cycles(runtime)
    assert len(opened) == 40
    assert len({cycle.subscription_id for cycle in opened}) == 40
    assert sorted(set(queued.ids)) == [cycle.id for cycle in opened]


def test_lost_queue_message_is_queued_again(runtime: Runtime) -> None:
    add_due(runtime, 1)
    tick(runtime, NOW, Recorder())
    later = NOW + timedelta(seconds=runtime.settings.requeue_after + 1)
    queued = Recorder()
    tick(runtime, later, queued)
    assert queued.ids == [cycles(runtime)[0].id]


def test_failed_enqueue_leaves_cycle_for_next_tick(runtime: Runtime) -> None:
    add_due(runtime, 1)

    def broker_down(cycle_id: int) -> None:
        raise ConnectionError("broker unreachable")

    try:
        tick(runtime, NOW, broker_down)
    except ConnectionError:
        pass
    assert cycles(runtime)[0].queued_at is None
    queued = Recorder()
    tick(runtime, NOW + timedelta(seconds=30), queued)
    assert queued.ids == [cycles(runtime)[0].id]


def stall(runtime: Runtime, *, sent: bool) -> int:
    """Leave a cycle claimed by a worker that died, before or after sending."""
    add_due(runtime, 1)
    tick(runtime, NOW, Recorder())
    with runtime.sessions() as session:
        cycle = session.scalars(sa.select(BillingCycle)).one()
        cycle.state = CycleState.CHARGING
        cycle.attempt_count = 1
        cycle.order_id = 100
        cycle.updated_at = NOW
        session.add(
            ChargeAttempt(
                cycle_id=cycle.id,
                number=1,
                started_at=NOW,
                payment_sent_at=NOW if sent else None,
            )
        )
        session.commit()
        return cycle.id


def test_stalled_unsent_attempt_is_retried(runtime: Runtime) -> None:
    cycle_id = stall(runtime, sent=False)
    later = NOW + timedelta(seconds=runtime.settings.charge_lease + 1)
    queued = Recorder()
    result = tick(runtime, later, queued)
    assert result.recovered == 1
    assert queued.ids == [cycle_id]
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        assert cycle is not None
        assert cycle.state == CycleState.RETRY_SCHEDULED
        assert cycle.attempts[0].outcome == OutcomeClass.NOT_CHARGED


def test_stalled_sent_attempt_becomes_unknown(runtime: Runtime) -> None:
    cycle_id = stall(runtime, sent=True)
    later = NOW + timedelta(seconds=runtime.settings.charge_lease + 1)
    queued = Recorder()
    tick(runtime, later, queued)
    assert queued.ids == []
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        assert cycle is not None
        assert cycle.state == CycleState.UNKNOWN
        assert cycle.attempts[0].outcome == OutcomeClass.UNKNOWN


def test_claim_within_lease_is_left_alone(runtime: Runtime) -> None:
    cycle_id = stall(runtime, sent=False)
    result = tick(runtime, NOW + timedelta(seconds=60), Recorder())
    assert result.recovered == 0
    with runtime.sessions() as session:
        cycle = session.get(BillingCycle, cycle_id)
        assert cycle is not None
        assert cycle.state == CycleState.CHARGING
