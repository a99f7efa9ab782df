"""The report's numbers: a run's window read from the store into a plain, frozen `ReportData`.

Everything comes through the SQL aggregates of `store.audit` and `store.timeline`; nothing loops
over the log in Python but `verify_chain`, which must read every event to prove the chain, and
runs alongside the queries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from longrun.app.report.look import MARKERS
from longrun.store import audit, log, runs
from longrun.store import timeline as tl
from longrun.store.db import Store
from longrun.store.errors import LongrunError

BUCKETS = 96
"""Time buckets across the window for the token and event-rate charts (15 minutes in a day)."""


class ReportError(LongrunError):
    """Bad input to the report: a time that does not parse, an empty window, a path that cannot be written."""


def parse_time(text: str, what: str) -> datetime:
    """An ISO-8601 time from the command line, in UTC (a time without an offset is read as UTC)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(
            f"{what} {text!r} is not an ISO time (e.g. 2026-11-20T08:00 or 2026-11-20T08:00+02:00)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Summary:
    """The page's first panel: what the run set out to do, how it went, what it cost."""

    goal: str
    state: str
    state_reason: str | None
    events: int
    sessions: int
    spend_usd: float
    """The sum of the `usage.usd` of the window's model_call and judge_call events."""
    spend_before_usd: float
    """What the run had spent before the window began (0 for the whole run)."""
    budget_usd: float | None
    tokens: dict[str, int]
    calls: int
    features_passing: int
    features_total: int
    approvals: audit.ApprovalCounts
    breaker_trips: int
    chain: log.ChainReport
    sandbox: audit.Confinement

    def to_json(self) -> dict[str, Any]:
        return {
            "goal": self.goal,
            "state": self.state,
            "state_reason": self.state_reason,
            "events": self.events,
            "sessions": self.sessions,
            "spend_usd": self.spend_usd,
            "spend_before_usd": self.spend_before_usd,
            "budget_usd": self.budget_usd,
            "tokens": self.tokens,
            "calls": self.calls,
            "features_passing": self.features_passing,
            "features_total": self.features_total,
            "approvals": {
                "asked": self.approvals.asked,
                "decided": self.approvals.decided,
                "expired": self.approvals.expired,
                "pending": self.approvals.pending,
            },
            "breaker_trips": self.breaker_trips,
            "chain": self.chain.to_json(),
            "sandbox": {
                "confined": self.sandbox.confined,
                "unconfined": self.sandbox.unconfined,
                "why": self.sandbox.why,
            },
        }


@dataclass(frozen=True)
class SessionRow:
    """One session in the window: when it ran, how it ended, what its calls cost in the window."""

    n: int
    start: datetime
    end: datetime | None
    state: str
    end_reason: str | None
    outcome: str
    """A key of `OUTCOMES` (or the session's state when it is none of them)."""
    usd: float
    tokens: int


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, for the run `run_id` between `start` and `end`."""

    run_id: str
    name: str
    start: datetime
    end: datetime
    windowed: bool
    """Whether --since or --until narrowed the report to part of the run."""
    bucket_s: int
    summary: Summary
    spend: list[tuple[datetime, float]]
    """The run's cumulative spend at the start of the window and at the end of each bucket."""
    tokens: list[tuple[datetime, dict[str, int]]]
    """Tokens by kind per bucket (its start), for the buckets that have calls."""
    features: list[tuple[datetime, int]]
    """Features passing: at the window's start, at each checkpoint in it, and at its end."""
    sessions: list[SessionRow]
    outside_sessions: audit.CallUsage | None
    """Calls in the window made outside any session, when there are some."""
    rates: dict[str, list[int]]
    """Events per bucket by kind, the busiest kind first."""
    markers: list[tl.Marker]
    """Approvals, breaker trips and the other events of `MARKERS`."""
    verdicts: list[tl.Marker]
    """Features that came to pass, or stopped passing, at a checkpoint."""
    decisions: list[audit.Decision]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "windowed": self.windowed,
            "bucket_s": self.bucket_s,
            "summary": self.summary.to_json(),
            "sessions": [
                {
                    "n": s.n,
                    "start": _iso(s.start),
                    "end": _iso(s.end) if s.end else None,
                    "state": s.state,
                    "outcome": s.outcome,
                    "usd": s.usd,
                    "tokens": s.tokens,
                }
                for s in self.sessions
            ],
            "decisions": len(self.decisions),
        }


def collect(
    store: Store, run_ref: str, *, since: datetime | None = None, until: datetime | None = None
) -> ReportData:
    """Read the report's numbers for run `run_ref` (id, id prefix or name), in the window."""
    for value, flag in ((since, "--since"), (until, "--until")):
        if value is not None and value.tzinfo is None:
            raise ReportError(f"{flag} must carry a time zone")
    if since is not None and until is not None and since >= until:
        raise ReportError(f"--since {_iso(since)} is not before --until {_iso(until)}")
    run = runs.get_run(store, run_ref)
    whole = audit.log_span(store, run.id)
    first = min(run.created_at, whole.first) if whole.first else run.created_at
    start = since or first
    end = until or (whole.last + timedelta(microseconds=1) if whole.last else first + timedelta(seconds=1))
    if end <= start:
        raise ReportError(
            f"--since {_iso(start)} is after the last event of run {run.name} ({_iso(end)}): "
            "nothing to report"
        )
    windowed = since is not None or until is not None
    # Proving the chain reads every event in Python; the SQL below runs meanwhile, off the GIL.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-chain") as pool:
        verifying = pool.submit(log.verify_chain, store, run.id)
        before = audit.call_usage(store, run.id, until=start).usd if since is not None else 0.0
        active = audit.activity(store, run.id, start, end, BUCKETS)
        line = tl.timeline(store, run.id, since=start, until=end, now=end)
        at_end = audit.features_at(store, run.id, until)
        approvals = audit.approval_counts(store, run.id, since=start, until=end)
        decided = audit.decisions(store, run.id, since=start, until=end)
        confined = audit.confinement(store, run.id, since=start, until=end)
        chain = verifying.result()
    feature_ids = [f["id"] for f in run.spec.get("features", [])]
    width, by_session = active.width, active.sessions
    spent = _total(by_session.values())
    passing_at_end = sum(1 for f in feature_ids if at_end.get(f) == "pass")

    buckets = max(1, math.ceil((end - start).total_seconds() / width))
    spend = _cumulative(start, end, width, buckets, before, [(b, usd_) for b, _, usd_ in active.tokens])
    features = _features(store, run.id, line, feature_ids, start, end, since is not None, passing_at_end)
    sessions = [_session_row(bar, by_session.get(bar.id)) for bar in line.sessions]
    outside = by_session.get(None)
    summary = Summary(
        goal=run.goal,
        state=str(run.state),
        state_reason=run.state_reason,
        events=sum(count for _, _, count in active.rates),
        sessions=len(sessions),
        spend_usd=spent.usd,
        spend_before_usd=before,
        budget_usd=line.budget_usd,
        tokens=spent.tokens,
        calls=spent.calls,
        features_passing=passing_at_end,
        features_total=len(feature_ids),
        approvals=approvals,
        breaker_trips=sum(1 for m in line.markers if m.kind == "breaker_tripped"),
        chain=chain,
        sandbox=confined,
    )
    return ReportData(
        run_id=run.id,
        name=run.name,
        start=start,
        end=end,
        windowed=windowed,
        bucket_s=width,
        summary=summary,
        spend=spend,
        tokens=[(audit.bucket_time(start, width, b), kinds) for b, kinds, _ in active.tokens],
        features=features,
        sessions=sessions,
        outside_sessions=outside if outside and outside.calls else None,
        rates=_rates(active.rates, buckets),
        markers=[m for m in line.markers if m.kind in MARKERS],
        verdicts=[m for m in line.markers if m.kind in ("verdict_up", "verdict_down")],
        decisions=decided,
    )


def _total(parts: Iterable[audit.CallUsage]) -> audit.CallUsage:
    """The sum of per-session usages: every call in the window, each counted once."""
    parts = list(parts)
    kinds = {k: sum(p.tokens[k] for p in parts) for k in audit.TOKEN_KINDS}
    return audit.CallUsage(sum(p.calls for p in parts), kinds, math.fsum(p.usd for p in parts))


def _cumulative(
    start: datetime, end: datetime, width: int, buckets: int, before: float, spent: list[tuple[int, float]]
) -> list[tuple[datetime, float]]:
    """The cumulative spend at the window's start and at every bucket's end (the last cut at `end`)."""
    per_bucket = dict(spent)
    points = [(start, before)]
    total = before
    for b in range(buckets):
        total += per_bucket.get(b, 0.0)
        points.append((min(end, audit.bucket_time(start, width, b + 1)), total))
    return points


def _features(
    store: Store,
    run_id: str,
    line: tl.Timeline,
    feature_ids: list[str],
    start: datetime,
    end: datetime,
    from_before: bool,
    at_end: int,
) -> list[tuple[datetime, int]]:
    first = 0
    if from_before:
        was = audit.features_at(store, run_id, start)
        first = sum(1 for f in feature_ids if was.get(f) == "pass")
    points = [(start, first)]
    points += [(p.ts, int(p.value)) for p in line.features]
    points.append((end, at_end))
    return points


def _session_row(bar: tl.SessionBar, used: audit.CallUsage | None) -> SessionRow:
    if bar.end is None:
        outcome = "running"
    elif bar.state == "ended":
        outcome = bar.end_reason or "ended"
    else:
        outcome = bar.state
    return SessionRow(
        n=bar.n,
        start=bar.start,
        end=bar.end,
        state=bar.state,
        end_reason=bar.end_reason,
        outcome=outcome,
        usd=used.usd if used else 0.0,
        tokens=used.total_tokens if used else 0,
    )


def _rates(rows: list[tuple[int, str, int]], buckets: int) -> dict[str, list[int]]:
    by_kind: dict[str, list[int]] = {}
    for b, kind, count in rows:
        counts = by_kind.setdefault(kind, [0] * buckets)
        if 0 <= b < buckets:
            counts[b] += count
    return dict(sorted(by_kind.items(), key=lambda item: (-sum(item[1]), item[0])))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")
