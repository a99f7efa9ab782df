"""The supervisor's tick over many runs: its writes in one transaction, each spec validated once
per version, and a lease that a long tick cannot let lapse. A real store, a real APScheduler on
the store's job table; no session starts (every run's next session is in the future)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from longrun.bench.supervisor import fill
from longrun.scheduler.spec.run import stored_spec
from longrun.scheduler.supervisor.daemon import Supervisor, SupervisorConfig
from longrun.scheduler.supervisor.leasing import LeaseKeeper
from longrun.store import lease, log, runs
from longrun.store.db import Store
from longrun.store.models import RunState, utcnow

RUNS = 30


@pytest.fixture
def supervisor(store: Store, tmp_path: Path) -> Iterator[Supervisor]:
    fill(store, RUNS, tmp_path)
    made = Supervisor(store, SupervisorConfig(tick=3600))
    made.scheduler.start(paused=True)
    yield made
    made.scheduler.shutdown(wait=False)
    made.pool.shutdown(wait=True)


def write_transactions(store: Store) -> list[int]:
    """A list that counts, from now on, the write transactions begun on the store's engine."""
    begun: list[int] = []

    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("longrun_write"):
            begun.append(1)

    event.listen(store.engine, "begin", on_begin)
    return begun


def test_the_first_tick_plans_every_run_in_one_write_and_a_steady_tick_writes_nothing(
    store: Store, supervisor: Supervisor
) -> None:
    begun = write_transactions(store)
    supervisor.reconcile()
    assert len(begun) == 1
    assert len(supervisor.scheduler.get_jobs()) == RUNS
    plans = runs.run_plans(store, [RunState.scheduled])
    assert len(plans) == RUNS and all(p.next_session_at is not None for p in plans)
    supervisor.reconcile()
    supervisor.reconcile()
    assert len(begun) == 1


def test_a_spec_is_validated_once_per_version_and_a_changed_one_is_seen(
    store: Store, supervisor: Supervisor
) -> None:
    stored_spec.cache_clear()
    supervisor.reconcile()
    supervisor.reconcile()
    assert stored_spec.cache_info().misses == RUNS  # one per run's spec, not one per tick
    changed = runs.list_runs(store)[0]
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    spec = changed.spec | {"schedule": changed.spec["schedule"] | {"not_after": past, "not_before": None}}
    with store.writing() as conn:
        runs.set_run_spec(conn, changed.id, spec)
    supervisor.reconcile()
    assert stored_spec.cache_info().misses == RUNS + 1
    paused = runs.get_run(store, changed.id)
    assert paused.state == RunState.paused and "past its not_after time" in (paused.state_reason or "")
    assert [e.data["by"] for e in log.read_events(store, changed.id, kinds=["paused"])] == ["supervisor"]
    assert not [j for j in supervisor.scheduler.get_jobs() if j.id.startswith(changed.id)]


def test_the_lease_is_renewed_while_a_tick_runs_long(store: Store) -> None:
    """The keeper renews the lease on its own thread; the clock is the test's, so 'long' is
    whatever the test says, and no assertion depends on how fast the machine is."""
    now = [utcnow()]
    ttl = timedelta(seconds=20)

    def clock() -> datetime:
        return now[0]

    assert lease.acquire(store, "first", ttl, clock())
    keeper = LeaseKeeper(store, "first", ttl, clock, every=0.1)
    keeper.start()
    try:
        for _ in range(5):  # five times most of a time to live passes during one long tick
            now[0] += ttl * 0.8
            renewed = threading.Event()
            for _ in range(600):
                held = lease.current(store)
                if held is not None and held.expires_at > now[0] + ttl * 0.5:
                    renewed.set()
                    break
                threading.Event().wait(0.05)
            assert renewed.is_set(), "the keeper did not renew the lease within 30 s"
            assert not lease.acquire(store, "second", ttl, clock())
    finally:
        keeper.stop()
    now[0] += ttl * 1.1
    assert lease.acquire(store, "second", ttl, clock())  # once no one keeps it, it lapses
    assert not keeper.renew() and keeper.lost.is_set()
