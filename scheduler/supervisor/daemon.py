"""The supervisor (`longrun daemon`): APScheduler fires sessions; a reconcile loop keeps them honest.

Exactly one supervisor works on a store at a time: it holds the lease row and renews it every
tick, and stops supervising the moment it cannot. APScheduler (with its SQLAlchemyJobStore in
the store's own SQLite file, so next-fire times survive restarts) only says *when* a run is due;
the reconcile loop does the rest, every tick:

1. watch live sessions (`watching.py`): kill those past their deadline or asked to stop (process
   group), mark those whose process is gone or whose heartbeat is stale as `crashed`;
2. settle ended sessions (in a worker thread): judge them, then plan the next session
   (cooldown, usage-limit reset, window) or mark the run done;
3. keep one APScheduler job per active run in step with its state and spec, and mirror the next
   fire time and its reason into the run row for `longrun status` and the UI;
4. start the sessions that are due, at most `max_concurrent` at once; the rest wait in line.

Sessions are processes of their own (own process groups): they outlive a supervisor that
crashes, and the next supervisor adopts or reaps them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Connection

from longrun.scheduler import control
from longrun.scheduler.guards.breakers import Trip, failed, failures_trip, no_progress_trip
from longrun.scheduler.judging.judge import Judgement, apply_judgement, judge_checkpoint
from longrun.scheduler.spec.run import RunSpec, stored_spec
from longrun.scheduler.supervisor import launch
from longrun.scheduler.supervisor.dispatch import Dispatcher, LocalDispatcher
from longrun.scheduler.supervisor.jobstore import BatchingJobStore, TickWrites
from longrun.scheduler.supervisor.leasing import LeaseKeeper
from longrun.scheduler.supervisor.notify import notify_once
from longrun.scheduler.supervisor.planning import (
    ACTIVE,
    ended_data,
    is_periodic,
    limit_reset_at,
    periodic_trigger,
    plan_next,
    session_progress,
    window_end,
)
from longrun.scheduler.supervisor.watching import SessionWatch
from longrun.store import lease, log, runs
from longrun.store.db import Store
from longrun.store.errors import LongrunError
from longrun.store.models import RunState, utcnow
from longrun.store.runs import RunPlan, RunView, SessionView

JOBS_TABLE = "apscheduler_jobs"
_current: Supervisor | None = None


def fire(run_id: str, reason: str) -> None:
    """APScheduler's job function (referenced by name in the job store): a run's session is due."""
    supervisor = _current
    if supervisor is not None:
        supervisor.on_fire(run_id, reason)


@dataclass
class SupervisorConfig:
    max_concurrent: int = field(default_factory=lambda: os.cpu_count() or 1)
    lease_ttl: timedelta = timedelta(seconds=20)
    tick: float = 1.0
    grace: timedelta = timedelta(seconds=30)
    """On shutdown, how long running sessions get to wrap up before they are killed."""
    dispatcher: Dispatcher = field(default_factory=lambda: LocalDispatcher(warm=True))
    """Where sessions run: processes here (forked warm), unless another dispatcher is given (a task
    queue's, `supervisor/celery/`, whose sessions `remote.py` watches)."""


class Supervisor:
    def __init__(
        self,
        store: Store,
        config: SupervisorConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.announce = announce
        self.config = config or SupervisorConfig()
        self.clock = clock
        self.holder = lease.holder_id()
        self.sessions = SessionWatch(store)
        self.settling: dict[int, Future[None]] = {}
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="longrun-judge")
        self.stopping = threading.Event()
        self.wake = threading.Event()
        """Set when there is work before the next tick (a job fired, a stop): the loop goes on now."""
        self.holding = False
        self.scheduler = self._make_scheduler()
        self.lock = threading.Lock()

    def _make_scheduler(self) -> BackgroundScheduler:
        """APScheduler with its jobs in the store's own file; a job that missed its time while no
        supervisor ran fires once (coalesced), however late."""
        self.jobstore = BatchingJobStore(
            engine=self.store.engine.execution_options(longrun_write=True),
            read_engine=self.store.engine,
            tablename=JOBS_TABLE,
        )
        return BackgroundScheduler(
            jobstores={"default": self.jobstore},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    # --- lifecycle --------------------------------------------------------------------------

    def serve(self, until: Callable[[], bool] | None = None) -> None:
        """Wait for the lease, then supervise until `stop()` (or until `until()` is true)."""
        global _current
        waited = False
        while not self.stopping.is_set():
            if not lease.acquire(self.store, self.holder, self.config.lease_ttl, self.clock()):
                if not waited:
                    waited = True
                    holder = lease.current(self.store)
                    self._say(
                        f"waiting: the lease is held by {holder.holder if holder else 'another supervisor'}"
                    )
                self.stopping.wait(self.config.tick)
                continue
            self.holding = True
            _current = self
            self._say(f"supervising as {self.holder}")
            lease.announce(self.store, self.holder, self.clock(), self.config.max_concurrent)
            keeper = LeaseKeeper(self.store, self.holder, self.config.lease_ttl, self.clock)
            keeper.start()
            prepare = getattr(self.config.dispatcher, "prepare", None)
            if prepare is not None:
                prepare(self.store)
            self.scheduler.start()
            try:
                while not self.stopping.is_set():
                    self.reconcile()
                    if until is not None and until():
                        return
                    self.wake.wait(self.config.tick)
                    self.wake.clear()
                    if keeper.lost.is_set() or not keeper.renew():
                        self._say("lost the lease: another supervisor took over")
                        self.holding = False
                        break
            finally:
                keeper.stop()
                if self.scheduler.running:
                    self.scheduler.shutdown(wait=False)
                    self.scheduler = self._make_scheduler()
                _current = None

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def shutdown(self) -> None:
        """Clean shutdown: tell our sessions to wrap up, kill what is left at the grace deadline,
        settle them, and give the lease up."""
        self.stopping.set()
        if self.holding:
            self.sessions.shut_down(self.config.grace)
            self._settle_ended(wait=True)
            lease.release(self.store, self.holder)
            self.holding = False
        close = getattr(self.config.dispatcher, "close", None)
        if close is not None:
            close()
        self.pool.shutdown(wait=True)

    def _say(self, text: str) -> None:
        if self.announce is not None:
            self.announce(text)

    # --- the reconcile loop -----------------------------------------------------------------

    def reconcile(self) -> None:
        with self.lock:
            now = self.clock()
            control.expire_approvals(self.store)
            self.sessions.tick(now)
            self._settle_ended()
            active = runs.run_plans(self.store, sorted(ACTIVE))
            settling = {s.run_id for s in runs.unsettled_sessions(self.store)}
            paused = self._sync_jobs(now, active, settling)
            self._start_due(now, [r for r in active if r.id not in paused], settling)

    def _settle_ended(self, wait: bool = False) -> None:
        for s in runs.unsettled_sessions(self.store):
            if s.id not in self.settling:
                self.settling[s.id] = self.pool.submit(self._settle, s)
        for session_id, future in list(self.settling.items()):
            if wait:
                future.exception()
            if not future.done():
                continue
            del self.settling[session_id]
            error = future.exception()
            if error is not None:
                # Never retry a settlement that failed every tick: say so, and let a person look.
                session = runs.get_session(self.store, session_id)
                reason = (
                    f"the supervisor could not settle session {session.n}: {type(error).__name__}: {error}"
                )
                with self.store.writing() as conn:
                    runs.mark_settled(conn, session_id)
                    runs.set_run_state(conn, session.run_id, RunState.paused, reason[:300])
                    log.append(
                        conn,
                        session.run_id,
                        "supervisor_error",
                        {"while": "settling the session", "error": f"{type(error).__name__}: {error}"},
                        session_id=session_id,
                    )

    def _settle(self, session: SessionView) -> None:
        """Judge an ended session and plan what comes after it."""
        run = runs.get_run(self.store, session.run_id)
        judgement: Judgement | None = None
        try:
            judgement = judge_checkpoint(self.store, run.id, session_id=session.id)
        except LongrunError as exc:
            log.record(self.store, run.id, "judge_error", {"detail": exc.message}, session_id=session.id)
        statuses = judgement.statuses if judgement is not None else {}
        spec = RunSpec.model_validate(run.spec)
        run = runs.get_run(self.store, run.id)
        now = utcnow()
        all_pass = judgement is not None and judgement.all_pass
        retry_at = limit_reset_at(self.store, session)
        ended = ended_data(self.store, session)
        progress = session_progress(self.store, run, spec, session, statuses)
        trips = [] if all_pass else self._look_back(run, spec, session, progress)
        in_session_trip = ended.get("breaker")
        with self.store.writing() as conn:
            runs.mark_settled(conn, session.id)
            log.append(conn, run.id, "session_judged", {"n": session.n, **progress}, session_id=session.id)
            decided = None
            if judgement is not None:
                decided = apply_judgement(conn, self.store, run, spec, judgement, session.id)
            if decided is not None:
                trips = []
            for trip in trips:
                runs.set_breaker(conn, run.id, trip.name, "open", trip.reason)
                log.append(
                    conn,
                    run.id,
                    "breaker_tripped",
                    {"breaker": trip.name, **trip.numbers},
                    session_id=session.id,
                )
            tripped = [t.name for t in trips] + ([in_session_trip] if in_session_trip and not decided else [])
            if not all_pass and not tripped:
                for name, breaker in runs.breakers(self.store, run.id).items():
                    if breaker.state == "half_open":  # the trial session went well
                        runs.set_breaker(conn, run.id, name, "closed")
                        log.append(conn, run.id, "breaker_closed", {"breaker": name}, session_id=session.id)
            one_off = plan_next(
                conn,
                run,
                spec,
                session,
                decided=decided,
                tripped=tripped,
                ended=ended,
                retry_at=retry_at,
                now=now,
            )
        if one_off is not None:  # after the commit: the job store writes through its own connection
            self._add_one_off(run.id, *one_off)
        for trip in trips:
            notify_once(
                spec.notify.webhook_url,
                "breaker_tripped",
                run.id,
                run.name,
                {"breaker": trip.name, **trip.numbers},
            )

    def _look_back(
        self, run: RunView, spec: RunSpec, session: SessionView, progress: dict[str, Any]
    ) -> list[Trip]:
        """The breakers that look over the sessions so far: no progress, and failures in a row."""
        states = runs.breakers(self.store, run.id)
        half_open = {name for name, b in states.items() if b.state == "half_open"}
        depth = max(spec.breakers.no_progress_sessions, spec.breakers.consecutive_failures) + 1
        judged = [e.data for e in log.read_events(self.store, run.id, kinds=["session_judged"])][-depth:]
        history = [bool(d.get("progress")) for d in judged] + [bool(progress["progress"])]
        handoffs = {c.session_id for c in runs.list_checkpoints(self.store, run.id) if c.reason == "handoff"}
        recent = [s for s in runs.list_sessions(self.store, run.id) if s.is_final][-depth:]
        failures = [failed(s, s.id in handoffs) for s in recent]
        trips = []
        for trip in (
            no_progress_trip(spec.breakers, history, "no_progress_sessions" in half_open),
            failures_trip(spec.breakers, failures, "consecutive_failures" in half_open),
        ):
            if (
                trip is not None
                and states.get(trip.name, None) is None
                or (trip is not None and states[trip.name].state != "open")
            ):
                trips.append(trip)
        return trips

    def _add_one_off(self, run_id: str, at: datetime, reason: str) -> None:
        self.scheduler.add_job(
            fire,
            trigger=DateTrigger(run_date=at),
            args=(run_id, reason),
            id=f"{run_id}:next",
            replace_existing=True,
        )

    def _sync_jobs(self, now: datetime, active: list[RunPlan], settling: set[str]) -> set[str]:
        """Keep one APScheduler job per active run in step with its spec and mirror its next time
        into the run's plan, every write of the tick in one transaction; returns the runs it
        paused (past their `not_after`)."""
        jobs = {job.id: job for job in self.scheduler.get_jobs()}
        active_ids = {run.id for run in active}
        paused: set[str] = set()
        with TickWrites(self.store, self.jobstore) as writes:
            for job_id in list(jobs):
                if job_id.rpartition(":")[0] not in active_ids:
                    writes.conn()
                    self.scheduler.remove_job(job_id)
                    del jobs[job_id]
            for run in active:
                periodic_id, next_id = f"{run.id}:schedule", f"{run.id}:next"
                schedule = stored_spec(run.spec_json).schedule
                if (
                    schedule.not_after is not None
                    and now >= schedule.not_after
                    and run.state == RunState.scheduled
                ):
                    self._pause(
                        writes.conn(), run.id, f"past its not_after time ({schedule.not_after.isoformat()})"
                    )
                    paused.add(run.id)
                    for job_id in (periodic_id, next_id):
                        if jobs.pop(job_id, None) is not None:
                            self.scheduler.remove_job(job_id)
                    continue
                if is_periodic(schedule) and periodic_id not in jobs:
                    writes.conn()
                    jobs[periodic_id] = self.scheduler.add_job(
                        fire,
                        trigger=periodic_trigger(schedule),
                        args=(run.id, f"{schedule.mode} schedule"),
                        id=periodic_id,
                        replace_existing=True,
                    )
                busy = run.state == RunState.running or run.id in settling
                if not is_periodic(schedule) and next_id not in jobs and run.due_at is None and not busy:
                    at = max(t for t in (now, schedule.not_before, run.hold_until) if t is not None)
                    writes.conn()
                    jobs[next_id] = self.scheduler.add_job(
                        fire,
                        trigger=DateTrigger(run_date=at),
                        args=(run.id, run.next_reason or "started"),
                        id=next_id,
                        replace_existing=True,
                    )
                planned = [
                    j for j in (jobs.get(periodic_id), jobs.get(next_id)) if j is not None and j.next_run_time
                ]
                if planned and run.due_at is None:
                    first = min(planned, key=lambda j: j.next_run_time)
                    at = first.next_run_time
                    if run.hold_until is not None and run.hold_until > at:
                        at = run.hold_until
                    if run.next_session_at != at:
                        runs.set_run_plan(
                            writes.conn(), run.id, next_session_at=at, next_reason=first.args[1]
                        )
        if writes.wrote:
            self.scheduler.wakeup()  # its thread could not see the new jobs before the commit
        return paused

    def _pause(self, conn: Connection, run_id: str, reason: str) -> None:
        runs.set_run_state(conn, run_id, RunState.paused, reason)
        runs.set_run_plan(conn, run_id, due_at=None, next_session_at=None, next_reason=None)
        log.append(conn, run_id, "paused", {"by": "supervisor", "reason": reason})

    def on_fire(self, run_id: str, reason: str) -> None:
        """A job fired: mark the run due (or record why not); reconcile starts it."""
        now = utcnow()
        try:
            run = runs.get_run(self.store, run_id)
        except LongrunError:
            return
        if run.state not in ACTIVE:
            return
        live = [s for s in runs.live_sessions(self.store) if s.run_id == run_id]
        if live:
            log.record(self.store, run_id, "fire_skipped", {"reason": reason, "running_session": live[0].n})
            return
        schedule = RunSpec.model_validate(run.spec).schedule
        with self.store.writing() as conn:
            runs.set_run_plan(
                conn,
                run_id,
                due_at=now,
                next_session_at=now,
                next_reason=reason,
                window_ends_at=window_end(schedule, now),
            )
            log.append(conn, run_id, "session_due", {"reason": reason})
        self.wake.set()

    def _start_due(self, now: datetime, active: list[RunPlan], settling: set[str]) -> None:
        live = runs.live_sessions(self.store)
        room = self.config.max_concurrent - len(live)
        due = sorted((r for r in active if r.due_at is not None), key=lambda r: r.due_at or now)
        busy = {s.run_id for s in live} | settling
        for plan in due:
            if plan.id in busy:
                continue
            if plan.hold_until is not None and plan.hold_until > now:
                continue
            if room <= 0:
                reason = f"queued: {len(live)} of {self.config.max_concurrent} sessions running"
                if plan.next_reason != reason:
                    with self.store.writing() as conn:
                        runs.set_run_plan(conn, plan.id, next_reason=reason)
                continue
            run = runs.get_run(self.store, plan.id)
            try:
                launched = launch.start_session(
                    self.store, run, not_after=run.window_ends_at, dispatcher=self.config.dispatcher
                )
            except LongrunError as exc:
                log.record(self.store, run.id, "start_refused", {"detail": exc.message})
                with self.store.writing() as conn:
                    runs.set_run_plan(conn, run.id, due_at=None)
                continue
            self.sessions.started(launched)
            room -= 1
            with self.store.writing() as conn:
                runs.set_run_plan(
                    conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason=None
                )


FINISHED = frozenset(
    {RunState.done, RunState.failed, RunState.paused, RunState.tripped, RunState.awaiting_approval}
)


def supervise_until_finished(
    store: Store, run_id: str, *, timeout_s: float, config: SupervisorConfig | None = None
) -> bool:
    """Keep a started run going until it stops needing the supervisor (done, paused, waiting for a
    person) or `timeout_s` passes; returns False on timeout.

    When a live supervisor already holds the store's lease, it does the work and this only
    watches; otherwise this process supervises (holding the lease) until then, and shuts down
    cleanly, so nothing is left running behind it.
    """
    stop_at = utcnow() + timedelta(seconds=timeout_s)

    def finished() -> bool:
        return runs.get_run(store, run_id).state in FINISHED or utcnow() >= stop_at

    holder = lease.current(store)
    if holder is not None and holder.alive():
        while not finished():
            threading.Event().wait(0.5)
    else:
        supervisor = Supervisor(store, config or SupervisorConfig(tick=0.5, grace=timedelta(seconds=5)))
        try:
            supervisor.serve(until=finished)
        finally:
            supervisor.shutdown()
    return runs.get_run(store, run_id).state in FINISHED
