"""Planning after a session: what a run's schedule says comes next, whether a session moved the run
forward, and the state and next fire the supervisor writes when it settles a session.

Pure of APScheduler's running scheduler: the daemon calls these and adds the fires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection

from longrun.scheduler.spec.run import RunSpec
from longrun.scheduler.spec.tables import ScheduleSpec
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.models import RunState
from longrun.store.runs import RunView, SessionView

ACTIVE = frozenset({RunState.scheduled, RunState.running})


def is_periodic(schedule: ScheduleSpec) -> bool:
    """Whether APScheduler fires the run's sessions on a schedule (else each is planned after the last)."""
    return schedule.mode != "back_to_back"


def periodic_trigger(schedule: ScheduleSpec) -> IntervalTrigger | CronTrigger | None:
    """The APScheduler trigger of a run's schedule, or None for back-to-back runs."""
    if schedule.mode == "interval" and schedule.every is not None:
        return IntervalTrigger(
            seconds=schedule.every.total_seconds(),
            start_date=schedule.not_before,
            end_date=schedule.not_after,
        )
    if schedule.mode == "cron" and schedule.cron is not None:
        trigger = CronTrigger.from_crontab(schedule.cron)
        trigger.start_date = schedule.not_before
        trigger.end_date = schedule.not_after
        return trigger
    return None


def window_end(schedule: ScheduleSpec, fired_at: datetime) -> datetime | None:
    """The end of the cron window a session fired at `fired_at` belongs to, if the run has one."""
    if schedule.mode != "cron" or schedule.window is None:
        return None
    return fired_at + schedule.window


def next_after_session(
    schedule: ScheduleSpec, ended_at: datetime, window_ends_at: datetime | None
) -> tuple[datetime, str] | None:
    """When the next session starts after one ended, when the run's own rhythm says so.

    Back-to-back runs go again after the cooldown; a cron run goes again inside its window when
    there is room for a session; interval and cron runs otherwise wait for their next fire.
    """
    at = ended_at + schedule.cooldown
    if schedule.mode == "back_to_back":
        return (at, f"cooldown of {int(schedule.cooldown.total_seconds())}s after the last session")
    if window_ends_at is not None and at + timedelta(seconds=10) < window_ends_at:
        return (at, "the cron window is still open")
    return None


PAUSING_ENDS = frozenset({"error"})
"""Session ends that the next session would repeat at once (a missing key): the run pauses."""


def session_progress(
    store: Store, run: RunView, spec: RunSpec, session: SessionView, statuses: dict[str, str]
) -> dict[str, Any]:
    """Whether the session moved the run forward: a feature went from failing to passing (or, for
    a run with no checked features, the agent committed something)."""
    before: dict[str, str] = {}
    if session.from_checkpoint_id is not None:
        before = runs.get_checkpoint(store, session.from_checkpoint_id).features
    newly = sorted(f for f, status in statuses.items() if status == "pass" and before.get(f) != "pass")
    if statuses:
        return {"progress": bool(newly), "newly_passing": newly}
    commits = sum(len(c.commits) for c in runs.list_checkpoints(store, run.id) if c.session_id == session.id)
    return {"progress": commits > 0, "newly_passing": [], "commits": commits}


def ended_data(store: Store, session: SessionView) -> dict[str, Any]:
    """What the session said about its own end (detail, the cap that stopped it, …)."""
    for event in reversed(log.read_events(store, session.run_id, kinds=["session_ended"])):
        if event.session_id == session.id:
            return event.data
    return {}


def limit_reset_at(store: Store, session: SessionView) -> datetime | None:
    """The reset time a session that hit a usage limit was given, if it was."""
    if session.end_reason != "rate_limited":
        return None
    for event in reversed(log.read_events(store, session.run_id, kinds=["rate_limited"])):
        if event.session_id == session.id and event.data.get("retry_at"):
            return datetime.fromisoformat(event.data["retry_at"])
    return None


def plan_next(
    conn: Connection,
    run: RunView,
    spec: RunSpec,
    session: SessionView,
    *,
    decided: object,
    tripped: list[str],
    ended: dict[str, Any],
    retry_at: datetime | None,
    now: datetime,
) -> tuple[datetime, str] | None:
    """Set what comes after a judged session, in the settling transaction: the run tripped, waiting
    for a budget raise, held to midnight or a usage limit's reset, paused, or scheduled again.
    Returns the one-off fire the supervisor adds after the commit, if any."""
    one_off: tuple[datetime, str] | None = None
    cap = ended.get("cap") if session.end_reason == "budget" else None
    if decided is not None:
        pass  # done, or waiting for a person (sign-off, a proposed done-condition, the ratchet)
    elif tripped:
        reason = "; ".join(f"breaker {name} tripped" for name in tripped) + (
            f": reset with `longrun breaker reset {run.id} NAME`"
        )
        runs.set_run_state(conn, run.id, RunState.tripped, reason)
        runs.set_run_plan(conn, run.id, due_at=None, next_session_at=None, next_reason=None)
        for name in tripped:
            runs.add_approval(conn, run.id, "breaker_reset", {"breaker": name}, session.id)
    elif run.state not in ACTIVE:
        pass  # paused or stopped while the session ran: no next session
    elif cap in ("usd", "tokens"):
        reason = f"budget.{cap} is spent: waiting for a raise (`longrun budget set {run.id} --{cap} N`)"
        runs.set_run_state(conn, run.id, RunState.awaiting_approval, reason)
        runs.add_approval(
            conn, run.id, "budget_raise", {"cap": cap, "detail": ended.get("detail")}, session.id
        )
    elif cap == "per_day_usd":
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        reason = f"budget.per_day_usd is spent for today; next session after {midnight.isoformat()}"
        runs.set_run_plan(conn, run.id, hold_until=midnight, next_session_at=midnight, next_reason=reason)
        runs.set_run_state(conn, run.id, RunState.scheduled, reason)
        one_off = (midnight, reason)
    elif session.end_reason in PAUSING_ENDS:
        # Another session would end the same way at once: wait for a person instead of spinning.
        reason = f"session {session.n} ended on {session.end_reason}: {ended.get('detail', '')}"
        runs.set_run_state(conn, run.id, RunState.paused, reason)
        log.append(conn, run.id, "paused", {"by": "supervisor", "reason": reason}, session_id=session.id)
    elif retry_at is not None and not spec.schedule.resume_after_limit:
        reason = f"usage limit hit; it resets at {retry_at.isoformat()} (resume_after_limit = false)"
        runs.set_run_state(conn, run.id, RunState.paused, reason)
        log.append(conn, run.id, "paused", {"by": "supervisor", "reason": reason})
    elif retry_at is not None:
        when = retry_at.astimezone(UTC) if retry_at.tzinfo else retry_at
        reason = f"waiting for the usage limit to reset at {when:%Y-%m-%d %H:%M} UTC"
        runs.set_run_plan(conn, run.id, hold_until=retry_at, next_session_at=retry_at, next_reason=reason)
        runs.set_run_state(conn, run.id, RunState.scheduled, reason)
        log.append(conn, run.id, "usage_limit_wait", {"until": retry_at.isoformat()}, session_id=session.id)
        if spec.schedule.mode == "back_to_back":
            one_off = (retry_at, reason)
    else:
        runs.set_run_state(conn, run.id, RunState.scheduled, f"session {session.n} {session.state}")
        one_off = next_after_session(spec.schedule, now, run.window_ends_at)
        if one_off is not None:
            runs.set_run_plan(conn, run.id, next_session_at=one_off[0], next_reason=one_off[1])
    return one_off
