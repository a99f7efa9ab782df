"""Budgets and breakers: raising a cap (which decides a pending budget raise) and resetting a
tripped breaker.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from longrun.scheduler.control.runs import _who
from longrun.scheduler.guards.budget import Spent, caps_left
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition, SpecError
from longrun.store.models import RunState, utcnow
from longrun.store.runs import RunView
from longrun.store.runs.requests import BreakerResetRequest


def set_budget(
    store: Store,
    ref: str,
    caps: dict[str, float | int],
    *,
    by: str | None = None,
    comment: str | None = None,
) -> RunView:
    """Change a run's caps (`usd`, `tokens`, `per_session_usd`, `per_day_usd`).

    A raise decides the run's pending budget-raise approval, and a run that waited for it goes on.
    """
    run = runs.get_run(store, ref)
    who = _who(by)
    old = dict(run.spec.get("budget", {}))
    new_spec = {**run.spec, "budget": {**old, **caps}}
    try:
        spec = RunSpec.model_validate(new_spec)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"budget: {where}: {first['msg']}") from None
    spent = {"usd": run.usage.usd, "tokens": run.usage.tokens}
    for cap, value in caps.items():
        if cap in spent and value <= spent[cap]:
            raise InvalidTransition(
                f"budget.{cap}: {spent[cap]:g} is already spent; "
                f"a new cap must be more than that, found {value:g}"
            )
    pending = runs.list_approvals(store, run.id, state="pending")
    with store.writing() as conn:
        runs.set_run_spec(conn, run.id, spec.model_dump(mode="json"))
        log.append(conn, run.id, "budget_set", {"by": who, "from": old, "to": caps, "comment": comment})
        raised = [a for a in pending if a.kind == "budget_raise"]
        for approval in raised:
            runs.decide_approval(conn, approval.id, "approved", who, comment)
        if run.state == RunState.awaiting_approval and len(raised) == len(pending):
            runs.set_run_state(conn, run.id, RunState.scheduled, f"budget raised by {who}")
            runs.set_run_plan(
                conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason="budget raised"
            )
    return runs.get_run(store, run.id)


def budget_document(store: Store, ref: str, now: datetime | None = None) -> dict[str, Any]:
    """`longrun budget RUN --json`: every cap with what is spent and left, spend today and in the
    last hour (before `now`), and the breakers."""
    run = runs.get_run(store, ref)
    spec = RunSpec.model_validate(run.spec)
    now = now or utcnow()
    today = runs.day_usage(store, run.id, runs.utc_day(now))
    live = runs.live_sessions_of(store, run.id)
    session_usage = live[0].usage if live else runs.Usage()
    caps = caps_left(spec.budget, Spent(run.usage, session_usage, today))
    breakers = runs.breakers(store, run.id)
    return {
        "run_id": run.id,
        "state": run.state,
        "spent_usd": round(run.usage.usd, 6),
        "tokens": run.usage.tokens_json(),
        "today_usd": round(today.usd, 6),
        "last_hour_usd": round(runs.spent_since(store, run.id, now - timedelta(hours=1)), 6),
        "warn_at": spec.budget.warn_at,
        "caps": [
            {
                "cap": c.name,
                "limit": c.limit,
                "spent": round(c.spent, 6),
                "left": round(c.left, 6),
                "fraction": round(c.spent / c.limit, 4) if c.limit else None,
            }
            for c in caps
        ],
        "breakers": [
            {
                "name": name,
                "limit": value,
                "state": breakers[name].state if name in breakers else "closed",
                "reason": breakers[name].reason if name in breakers else None,
            }
            for name, value in spec.breakers.model_dump(mode="json").items()
            if name in BREAKER_NAMES
        ],
        "pending_approvals": [a.to_json() for a in runs.list_approvals(store, run.id, state="pending")],
    }


BREAKER_NAMES = (
    "no_progress_sessions",
    "consecutive_failures",
    "same_error_repeats",
    "max_usd_per_hour",
    "api_errors",
    "tamper",
    "judge_error",
)
"""The spec's breakers, and the two a judgement trips itself (see `judging.judge`)."""


def reset_breaker(
    store: Store, ref: str, name: str, *, by: str | None = None, comment: str | None = None
) -> RunView:
    """Half-open a tripped breaker: the next session is a trial, and one more bad sign opens it again."""
    run = runs.get_run(store, ref)
    if name not in BREAKER_NAMES:
        raise InvalidTransition(f"no breaker named {name!r} (breakers: {', '.join(BREAKER_NAMES)})")
    current = runs.breakers(store, run.id).get(name)
    if current is None or current.state != "open":
        state = current.state if current else "closed"
        raise InvalidTransition(
            f"breaker {name} of run {run.name} is {state}: only an open breaker can be reset"
        )
    who = _who(by)
    pending = runs.list_approvals(store, run.id, state="pending")
    with store.writing() as conn:
        runs.set_breaker(conn, run.id, name, "half_open")
        log.append(conn, run.id, "breaker_reset", {"breaker": name, "by": who, "comment": comment})
        for approval in pending:
            if isinstance(approval.asks, BreakerResetRequest) and approval.asks.breaker == name:
                runs.decide_approval(conn, approval.id, "approved", who, comment)
    still_open = [n for n, b in runs.breakers(store, run.id).items() if b.state == "open"]
    if run.state == RunState.tripped and not still_open:
        with store.writing() as conn:
            runs.set_run_state(conn, run.id, RunState.scheduled, f"breaker {name} reset by {who} (half-open)")
            runs.set_run_plan(
                conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason="breaker reset"
            )
    return runs.get_run(store, run.id)
