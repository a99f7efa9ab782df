"""`fill`: a big store of many runs and events, planned and written; `counts` to check one."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection

from longrun.bench.bigstore.payloads import payload_templates
from longrun.bench.bigstore.plan import BIGGEST_SHARE, MIN_EVENTS_PER_RUN, RunPlan, plan_runs
from longrun.bench.bigstore.writer import BATCH_EVENTS, Ids, StoreWriter
from longrun.bench.common import bench_spec
from longrun.store.db import Store
from longrun.store.models import utcnow

Progress = Callable[[str], None]


def fill(
    store: Store,
    runs: int,
    events: int,
    *,
    seed: int = 20261120,
    now: datetime | None = None,
    biggest_share: float = BIGGEST_SHARE,
    workspaces: Path | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Write `runs` runs and `events` events into `store`; return the run ids, the biggest run first.

    The store may hold other runs already; these are added beside them. `events` must be at least
    `MIN_EVENTS_PER_RUN` per run. Workspaces are named (not made) under `workspaces`, by default
    the store's `workspaces` folder.
    """
    if runs < 1:
        raise ValueError("fill at least one run")
    if events < runs * MIN_EVENTS_PER_RUN:
        raise ValueError(f"{events} events cannot fill {runs} runs (at least {MIN_EVENTS_PER_RUN} a run)")
    now = now or utcnow()
    rng = random.Random(seed)
    spec = bench_spec("bench", store.home)
    plans = plan_runs(rng, runs, events, now, biggest_share, len(spec["features"]))
    writer = StoreWriter(store, spec, payload_templates(), now, rng, workspaces or store.home / "workspaces")
    with store.writing() as conn:
        writer.ids = _next_ids(conn)
    written = 0
    batch: list[RunPlan] = []
    for plan in plans:
        batch.append(plan)
        if sum(p.events for p in batch) >= BATCH_EVENTS or plan is plans[-1]:
            writer.write(batch)
            written += sum(p.events for p in batch)
            batch = []
            if progress is not None:
                progress(f"bigstore: {written:,}/{events:,} events, {plans.index(plan) + 1}/{runs} runs")
    return [p.run_id for p in plans]


def _next_ids(conn: Connection) -> Ids:
    def top(table: str) -> int:
        return int(conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one()) + 1

    return Ids(top("session"), top("checkpoint"), top("approval"))


def counts(store: Store) -> dict[str, int]:
    """Rows per table (for checking a fill)."""
    with store.reading() as conn:
        return {
            table: int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())
            for table in ("run", "session", "checkpoint", "verdict", "approval", "breaker", "event")
        }
