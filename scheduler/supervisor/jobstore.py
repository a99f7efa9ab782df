"""APScheduler's job store in the store's own database, with the writes of one tick in one
transaction.

`SQLAlchemyJobStore` commits each job it adds, changes or removes on its own; a supervisor that
takes over a store of a thousand runs would pay a thousand commits (each an fsync) in its first
tick. Inside `batch(conn)` the calls made from the batching thread run instead on `conn`, the
tick's own write transaction (each in a savepoint where a failed statement would abort the whole
transaction, as on PostgreSQL; SQLite's survives one), so a conflicting id is still reported as
APScheduler expects; other threads (APScheduler's own, looking for due jobs) go on reading
through the engine as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import Connection, Engine

from longrun.store.db import Store


class _InBatch:
    """Stands in for the engine during a batch: `begin()` is a savepoint on the batch's connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        if self.conn.dialect.name == "sqlite":  # a failed statement leaves SQLite's transaction whole
            yield self.conn
            return
        with self.conn.begin_nested():
            yield self.conn


class BatchingJobStore(SQLAlchemyJobStore):
    """`SQLAlchemyJobStore` whose writes take the store's write lock and can join a transaction
    (`batch`), and whose reads (every tick's job list, the scheduler thread's look for due jobs)
    take no lock at all."""

    def __init__(self, *, engine: Engine, read_engine: Engine, tablename: str) -> None:
        self._local = threading.local()
        self._read_engine = read_engine
        super().__init__(engine=engine, tablename=tablename)

    @property
    def engine(self) -> Any:
        through: Any = getattr(self._local, "through", None)
        return through if through is not None else self._engine

    @engine.setter
    def engine(self, value: Any) -> None:
        self._engine = value

    @contextmanager
    def _through(self, engine: Any) -> Iterator[None]:
        saved = getattr(self._local, "through", None)
        self._local.through = engine if saved is None else saved  # a batch keeps its connection
        try:
            yield
        finally:
            self._local.through = saved

    @contextmanager
    def batch(self, conn: Connection) -> Iterator[None]:
        """Until the block ends, this thread's job writes (and reads) go through `conn`'s
        transaction; the caller commits it (and then wakes the scheduler up, whose own thread
        could not see the jobs before)."""
        with self._through(_InBatch(conn)):
            yield

    def lookup_job(self, job_id: str) -> Any:
        with self._through(self._read_engine):
            return super().lookup_job(job_id)

    def get_due_jobs(self, now: Any) -> Any:
        with self._through(self._read_engine):
            return super().get_due_jobs(now)

    def get_next_run_time(self) -> Any:
        with self._through(self._read_engine):
            return super().get_next_run_time()

    def get_all_jobs(self) -> Any:
        with self._through(self._read_engine):
            return super().get_all_jobs()


class TickWrites:
    """The writes of one tick in one transaction, begun at the first write (a tick with nothing
    to write takes no lock); the job store's writes join it."""

    def __init__(self, store: Store, jobstore: BatchingJobStore) -> None:
        self.store = store
        self.jobstore = jobstore
        self._stack = ExitStack()
        self._conn: Connection | None = None

    @property
    def wrote(self) -> bool:
        return self._conn is not None

    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self._stack.enter_context(self.store.writing())
            self._stack.enter_context(self.jobstore.batch(self._conn))
        return self._conn

    def __enter__(self) -> TickWrites:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.__exit__(*exc)
