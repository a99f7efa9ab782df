"""`longrun report`: a run's time on one self-contained HTML page, to audit a day of work in minutes.

`collect` reads everything the page shows through the SQL aggregates of `store.timeline` (nothing
loops over the log in Python but `verify_chain`, which must read every event to prove the chain)
into a `ReportData`; `render` draws it with plotly, the library embedded once, so the file opens
offline. Every chart shares the window's time axis; zooming one zooms the others.

Times are UTC throughout; `--since` and `--until` without an offset are read as UTC.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from longrun.app.format import span, usd
from longrun.app.format import tokens as _tokens
from longrun.store import log, runs
from longrun.store import timeline as tl
from longrun.store.db import Store
from longrun.store.errors import LongrunError

BUCKETS = 96
"""Time buckets across the window for the token and event-rate charts (15 minutes in a day)."""

TOKEN_LABELS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_write_tokens": "cache write",
    "cache_read_tokens": "cache read",
}
TOKEN_COLORS = {
    "input_tokens": "#4c78a8",
    "output_tokens": "#f58518",
    "cache_write_tokens": "#e45756",
    "cache_read_tokens": "#72b7b2",
}

OUTCOMES: dict[str, tuple[str, str]] = {
    "finished": ("finished its work", "#2ca02c"),
    "approval": ("paused for a person", "#1f77b4"),
    "stopped": ("stopped or paused", "#7f7f7f"),
    "budget": ("hit a budget cap", "#ff7f0e"),
    "rate_limited": ("rate limited", "#bcbd22"),
    "breaker": ("breaker tripped", "#d62728"),
    "api_error": ("API errors", "#8c564b"),
    "error": ("error", "#8c564b"),
    "timed_out": ("timed out", "#9467bd"),
    "crashed": ("crashed", "#000000"),
    "killed": ("killed", "#e377c2"),
    "running": ("still running", "#17becf"),
}
"""How a session ended: its end reason when it ended itself, else its state; label and colour."""

MARKERS: dict[str, tuple[str, str, str]] = {
    "approval_requested": ("approval asked", "#ff7f0e", "diamond"),
    "approval_decided": ("approval decided", "#2ca02c", "circle"),
    "approval_expired": ("approval expired", "#7f7f7f", "x"),
    "breaker_tripped": ("breaker tripped", "#d62728", "star"),
    "budget_warning": ("budget warning", "#e377c2", "triangle-up"),
    "usage_limit_wait": ("usage-limit wait", "#17becf", "hourglass"),
    "rewound": ("rewind", "#1f77b4", "triangle-left"),
    "forked": ("fork", "#9467bd", "triangle-right"),
    "fork_made": ("fork", "#9467bd", "triangle-right"),
}
"""The event markers drawn on the spend chart (a vertical line and a point with hover text)."""

CHART_IDS = ("chart-spend", "chart-tokens", "chart-features", "chart-sessions", "chart-events")
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
MARGIN = {"l": 150, "r": 90, "t": 36, "b": 40}
"""The same left and right margins on every chart, so their time axes line up."""


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


# --- the numbers --------------------------------------------------------------------------------


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
    approvals: tl.ApprovalCounts
    breaker_trips: int
    chain: log.ChainReport

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
    outside_sessions: tl.CallUsage | None
    """Calls in the window made outside any session, when there are some."""
    rates: dict[str, list[int]]
    """Events per bucket by kind, the busiest kind first."""
    markers: list[tl.Marker]
    """Approvals, breaker trips and the other events of `MARKERS`."""
    verdicts: list[tl.Marker]
    """Features that came to pass, or stopped passing, at a checkpoint."""
    decisions: list[tl.Decision]

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
    whole = tl.log_span(store, run.id)
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
        before = tl.call_usage(store, run.id, until=start).usd if since is not None else 0.0
        by_session = tl.session_usage(store, run.id, since=start, until=end)
        width, token_rows = tl.token_series(store, run.id, start, end, BUCKETS)
        _, rate_rows = tl.event_rates(store, run.id, start, end, BUCKETS)
        line = tl.timeline(store, run.id, since=start, until=end, now=end)
        at_end = tl.features_at(store, run.id, until)
        approvals = tl.approval_counts(store, run.id, since=start, until=end)
        decided = tl.decisions(store, run.id, since=start, until=end)
        chain = verifying.result()
    feature_ids = [f["id"] for f in run.spec.get("features", [])]
    spent = _total(by_session.values())
    passing_at_end = sum(1 for f in feature_ids if at_end.get(f) == "pass")

    buckets = max(1, math.ceil((end - start).total_seconds() / width))
    spend = _cumulative(start, end, width, buckets, before, [(b, usd_) for b, _, usd_ in token_rows])
    features = _features(store, run.id, line, feature_ids, start, end, since is not None, passing_at_end)
    sessions = [_session_row(bar, by_session.get(bar.id)) for bar in line.sessions]
    outside = by_session.get(None)
    summary = Summary(
        goal=run.goal,
        state=str(run.state),
        state_reason=run.state_reason,
        events=sum(count for _, _, count in rate_rows),
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
        tokens=[(tl.bucket_time(start, width, b), kinds) for b, kinds, _ in token_rows],
        features=features,
        sessions=sessions,
        outside_sessions=outside if outside and outside.calls else None,
        rates=_rates(rate_rows, buckets),
        markers=[m for m in line.markers if m.kind in MARKERS],
        verdicts=[m for m in line.markers if m.kind in ("verdict_up", "verdict_down")],
        decisions=decided,
    )


def _total(parts: Iterable[tl.CallUsage]) -> tl.CallUsage:
    """The sum of per-session usages: every call in the window, each counted once."""
    parts = list(parts)
    kinds = {k: sum(p.tokens[k] for p in parts) for k in tl.TOKEN_KINDS}
    return tl.CallUsage(sum(p.calls for p in parts), kinds, math.fsum(p.usd for p in parts))


def _cumulative(
    start: datetime, end: datetime, width: int, buckets: int, before: float, spent: list[tuple[int, float]]
) -> list[tuple[datetime, float]]:
    """The cumulative spend at the window's start and at every bucket's end (the last cut at `end`)."""
    per_bucket = dict(spent)
    points = [(start, before)]
    total = before
    for b in range(buckets):
        total += per_bucket.get(b, 0.0)
        points.append((min(end, tl.bucket_time(start, width, b + 1)), total))
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
        was = tl.features_at(store, run_id, start)
        first = sum(1 for f in feature_ids if was.get(f) == "pass")
    points = [(start, first)]
    points += [(p.ts, int(p.value)) for p in line.features]
    points.append((end, at_end))
    return points


def _session_row(bar: tl.SessionBar, used: tl.CallUsage | None) -> SessionRow:
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


# --- the page -----------------------------------------------------------------------------------


def build_report(
    store: Store, run_ref: str, *, since: datetime | None = None, until: datetime | None = None
) -> str:
    """The report of run `run_ref` as one self-contained HTML page (plotly.js embedded)."""
    return render(collect(store, run_ref, since=since, until=until))


def render(data: ReportData) -> str:
    figures = [
        (
            "Spend",
            "Cumulative spend of model and judge calls against the budget; approvals, breaker "
            "trips and other events marked on the time axis.",
            _spend_figure(data),
        ),
        ("Tokens", f"Tokens per {_width_words(data.bucket_s)} by kind.", _tokens_figure(data)),
        (
            "Features",
            "Done-condition features passing, as judged at each checkpoint.",
            _features_figure(data),
        ),
        (
            "Session timeline",
            "Each session from its start to its end, coloured by how it ended.",
            _gantt_figure(data),
        ),
        (
            "Events",
            f"Events per {_width_words(data.bucket_s)} by kind (colour on a log scale).",
            _heatmap_figure(data),
        ),
    ]
    charts = []
    for k, ((title, note, figure), div_id) in enumerate(zip(figures, CHART_IDS, strict=True)):
        div = figure.to_html(
            full_html=False,
            include_plotlyjs=k == 0,
            div_id=div_id,
            config=PLOTLY_CONFIG,
            default_width="100%",
        )
        charts.append(
            f'<section class="chart" id="{div_id.removeprefix("chart-")}"><h2>{_e(title)}</h2>'
            f'<p class="note">{_e(note)}</p>{div}</section>'
        )
    title = f"longrun report: {data.name}"
    payload = json.dumps(data.to_json(), ensure_ascii=False).replace("<", "\\u003c")
    return "".join(
        [
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
            _header(data),
            _summary(data),
            *charts,
            _sessions_table(data),
            _decisions_table(data),
            f"<footer>Made by <code>longrun report</code> at {_e(_when(datetime.now(UTC)))} UTC. "
            "Every time on this page is UTC.</footer>\n",
            f'<script type="application/json" id="report-data">{payload}</script>\n',
            f"<script>{_sync_script(data)}</script>\n",
            "</main>\n</body>\n</html>\n",
        ]
    )


def _header(data: ReportData) -> str:
    which = "window" if data.windowed else "whole run"
    return (
        f'<header><h1>{_e(data.name)} <span class="id">{_e(data.run_id)}</span></h1>'
        f'<p class="window">{which}: {_e(_when(data.start))} → {_e(_when(data.end))} UTC '
        f"({_e(_span(data.end - data.start))})</p></header>\n"
    )


def _summary(data: ReportData) -> str:
    s = data.summary
    spend = usd(s.spend_usd)
    if s.spend_before_usd:
        spend += f" in the window ({usd(s.spend_before_usd + s.spend_usd)} by its end)"
    if s.budget_usd:
        spend += f" of {usd(s.budget_usd)} budget"
    approvals = f"{s.approvals.asked} asked, {s.approvals.decided} decided"
    if s.approvals.pending:
        approvals += f", {s.approvals.pending} still pending"
    if s.approvals.expired:
        approvals += f", {s.approvals.expired} expired"
    chain = s.chain
    if chain.ok:
        chain_text, chain_class = f"whole: all {chain.events:,} events of the run verified", "ok"
    else:
        chain_text, chain_class = f"BROKEN at event {chain.broken_at}: {chain.reason}", "bad"
    features = f"{s.features_passing} of {s.features_total} pass" if s.features_total else "no done-condition"
    cells = [
        ("Duration", _span(data.end - data.start), ""),
        ("Sessions", f"{s.sessions}", ""),
        ("Spend", spend, ""),
        ("Tokens", f"{tokens(sum(s.tokens.values()))} in {s.calls:,} calls", ""),
        ("Features", features, ""),
        ("Approvals", approvals, ""),
        ("Breaker trips", f"{s.breaker_trips}", "bad" if s.breaker_trips else ""),
        ("Events", f"{s.events:,}", ""),
        ("Hash chain", chain_text, chain_class),
    ]
    items = "".join(f'<div class="cell {cls}"><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>' for k, v, cls in cells)
    return (
        '<section class="summary" id="summary"><h2>Summary</h2>'
        f'<p class="goal"><b>Goal:</b> {_e(s.goal.strip())}</p>'
        f'<p class="outcome"><b>Outcome:</b> <span class="state {_e(s.state)}">{_e(s.state)}</span> '
        f"{_e(s.state_reason or '')}</p><dl>{items}</dl></section>\n"
    )


def _sessions_table(data: ReportData) -> str:
    rows = []
    for s in data.sessions:
        label, color = OUTCOMES.get(s.outcome, (s.outcome, "#7f7f7f"))
        how = label + (f" ({s.end_reason})" if s.end_reason and s.end_reason != s.outcome else "")
        rows.append(
            f"<tr><td class=num>{s.n}</td><td class=when>{_e(_when(s.start))}</td>"
            f"<td class=when>{_e(_when(s.end)) if s.end else '—'}</td>"
            f'<td><span class="swatch" style="background:{color}"></span>{_e(how)}</td>'
            f"<td class=num>{_e(usd(s.usd))}</td><td class=num>{_e(tokens(s.tokens))}</td></tr>"
        )
    if data.outside_sessions is not None:
        o = data.outside_sessions
        rows.append(
            '<tr class="muted"><td></td><td colspan=3>calls outside any session</td>'
            f"<td class=num>{_e(usd(o.usd))}</td><td class=num>{_e(tokens(o.total_tokens))}</td></tr>"
        )
    total = data.summary
    rows.append(
        '<tr class="total"><td></td><td colspan=3>in all</td>'
        f"<td class=num>{_e(usd(total.spend_usd))}</td>"
        f"<td class=num>{_e(tokens(sum(total.tokens.values())))}</td></tr>"
    )
    where = " (spend and tokens within the window)" if data.windowed else ""
    return (
        '<section class="table" id="session-table"><h2>Sessions</h2>'
        f'<p class="note">{len(data.sessions)} sessions{_e(where)}.</p>'
        "<table><thead><tr><th>n</th><th>start</th><th>end</th><th>how it ended</th><th>spend</th>"
        f"<th>tokens</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>\n"
    )


def _decisions_table(data: ReportData) -> str:
    if not data.decisions:
        body = '<p class="note">No decisions by a person in this window.</p>'
    else:
        rows = "".join(
            f"<tr><td>{_e(d.by)}</td><td class=when>{_e(_when(d.ts))}</td><td>{_e(d.what)}</td>"
            f"<td>{_e(d.comment or '')}</td></tr>"
            for d in data.decisions
        )
        body = (
            "<table><thead><tr><th>who</th><th>when</th><th>what</th><th>comment</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    return f'<section class="table" id="decisions"><h2>Human decisions</h2>{body}</section>\n'


# --- the figures --------------------------------------------------------------------------------


def _layout(data: ReportData, height: int, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "height": height,
        "margin": MARGIN,
        "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "font": {"size": 11}},
        "xaxis": {"type": "date", "range": [_x(data.start), _x(data.end)], "title": {"text": "UTC"}},
        "font": {"family": FONTS, "size": 12},
    }
    layout.update(extra)
    return layout


def _figure(traces: list[Any], layout: dict[str, Any]) -> Any:
    import plotly.graph_objects as go

    return go.Figure(data=traces, layout=layout)


def _spend_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    s = data.summary
    xs = [_x(t) for t, _ in data.spend]
    ys = [v for _, v in data.spend]
    traces: list[Any] = [
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            name="spend",
            line={"color": "#1f77b4", "width": 2},
            fill="tozeroy",
            fillcolor="rgba(31,119,180,0.08)",
            hovertemplate="%{x}<br>$%{y:,.2f} spent<extra></extra>",
        )
    ]
    top = max(ys) if ys else 0.0
    if s.budget_usd:
        traces.append(
            go.Scatter(
                x=[_x(data.start), _x(data.end)],
                y=[s.budget_usd, s.budget_usd],
                mode="lines",
                name=f"budget {usd(s.budget_usd)}",
                line={"color": "#d62728", "dash": "dash", "width": 1.5},
                hovertemplate=f"budget {usd(s.budget_usd)}<extra></extra>",
            )
        )
        top = max(top, s.budget_usd)
    shapes = []
    groups: dict[str, list[tl.Marker]] = {}
    for m in data.markers:
        groups.setdefault(MARKERS[m.kind][0], []).append(m)
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": _x(m.ts),
                "x1": _x(m.ts),
                "y0": 0,
                "y1": 1,
                "line": {"color": MARKERS[m.kind][1], "width": 1, "dash": "dot"},
                "opacity": 0.6,
            }
        )
    for label, marks in groups.items():
        _, color, symbol = MARKERS[marks[0].kind]
        traces.append(
            go.Scatter(
                x=[_x(m.ts) for m in marks],
                y=[_spend_at(data, m.ts) for m in marks],
                mode="markers",
                name=f"{label} ({len(marks)})",
                marker={"color": color, "symbol": symbol, "size": 11, "line": {"color": "white", "width": 1}},
                hovertext=[f"{_when(m.ts)}<br>{_wrap(m.label)}" for m in marks],
                hoverinfo="text",
            )
        )
    layout = _layout(
        data,
        420,
        shapes=shapes,
        yaxis={
            "title": {"text": "USD"},
            "tickprefix": "$",
            "rangemode": "tozero",
            "range": [0, top * 1.08 or 1],
        },
    )
    return _figure(traces, layout)


def _spend_at(data: ReportData, at: datetime) -> float:
    """The cumulative spend at `at`, read off the bucket points (linear within a bucket)."""
    points = data.spend
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t0 <= at <= t1:
            whole = (t1 - t0).total_seconds()
            return v0 + (v1 - v0) * ((at - t0).total_seconds() / whole if whole else 1.0)
    return points[-1][1] if points else 0.0


def _tokens_figure(data: ReportData) -> Any:
    """One line per kind on a log scale (cache reads dwarf the rest); a gap where no call was made."""
    import plotly.graph_objects as go

    buckets = len(data.spend) - 1
    by_bucket = {round((t - data.start).total_seconds() / data.bucket_s): kinds for t, kinds in data.tokens}
    half = timedelta(seconds=data.bucket_s / 2)
    xs = [_x(tl.bucket_time(data.start, data.bucket_s, b) + half) for b in range(buckets)]
    traces = []
    for kind, label in TOKEN_LABELS.items():
        ys = [(by_bucket[b][kind] or None) if b in by_bucket else None for b in range(buckets)]
        total = sum(kinds[kind] for _, kinds in data.tokens)
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=f"{label} ({tokens(total)})",
                line={"color": TOKEN_COLORS[kind], "width": 2},
                marker={"size": 4},
                connectgaps=False,
                hovertemplate=f"%{{y:,}} {label}<extra></extra>",
            )
        )
    layout = _layout(
        data,
        340,
        hovermode="x unified",
        yaxis={"title": {"text": "tokens (log scale)"}, "type": "log", "dtick": 1, "exponentformat": "SI"},
    )
    return _figure(traces, layout)


def _features_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    total = data.summary.features_total
    traces: list[Any] = [
        go.Scatter(
            x=[_x(t) for t, _ in data.features],
            y=[v for _, v in data.features],
            mode="lines",
            line={"shape": "hv", "color": "#2ca02c", "width": 2},
            name="features passing",
            hovertemplate="%{x}<br>%{y} passing<extra></extra>",
        )
    ]
    passing = dict(data.features)
    for kind, label, color, symbol in (
        ("verdict_up", "now passes", "#2ca02c", "triangle-up"),
        ("verdict_down", "no longer passes", "#d62728", "triangle-down"),
    ):
        changes = [m for m in data.verdicts if m.kind == kind]
        if changes:
            traces.append(
                go.Scatter(
                    x=[_x(m.ts) for m in changes],
                    y=[passing.get(m.ts, 0) for m in changes],
                    mode="markers",
                    name=label,
                    marker={"color": color, "symbol": symbol, "size": 10},
                    hovertext=[f"{_when(m.ts)}<br>{_wrap(m.label)}" for m in changes],
                    hoverinfo="text",
                )
            )
    layout = _layout(
        data,
        280,
        yaxis={"title": {"text": f"of {total}"}, "range": [-0.2, max(total, 1) + 0.4], "dtick": 1},
    )
    return _figure(traces, layout)


def _gantt_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    by_outcome: dict[str, list[SessionRow]] = {}
    for s in data.sessions:
        by_outcome.setdefault(s.outcome, []).append(s)
    traces = []
    for outcome, rows in by_outcome.items():
        label, color = OUTCOMES.get(outcome, (outcome, "#7f7f7f"))
        starts = [max(s.start, data.start) for s in rows]
        ends = [min(s.end or data.end, data.end) for s in rows]
        traces.append(
            go.Bar(
                orientation="h",
                y=[f"session {s.n}" for s in rows],
                base=[_x(t) for t in starts],
                x=[max(1.0, (e - b).total_seconds() * 1000) for b, e in zip(starts, ends, strict=True)],
                name=f"{label} ({len(rows)})",
                marker={"color": color},
                customdata=[
                    [
                        s.n,
                        _when(s.start),
                        _when(s.end) if s.end else "—",
                        _span((s.end or data.end) - s.start),
                        usd(s.usd),
                        tokens(s.tokens),
                        s.end_reason or s.state,
                    ]
                    for s in rows
                ],
                hovertemplate=(
                    "session %{customdata[0]}<br>%{customdata[1]} → %{customdata[2]} (%{customdata[3]})<br>"
                    f"{label}: %{{customdata[6]}}<br>"
                    "%{customdata[4]}, %{customdata[5]} tokens<extra></extra>"
                ),
            )
        )
    height = min(760, max(200, 22 * len(data.sessions) + 110))
    layout = _layout(
        data,
        height,
        barmode="overlay",
        bargap=0.25,
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": [f"session {s.n}" for s in sorted(data.sessions, key=lambda s: s.n)],
            "autorange": "reversed",
        },
    )
    return _figure(traces, layout)


def _heatmap_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    kinds = list(data.rates)
    buckets = len(data.spend) - 1
    half = timedelta(seconds=data.bucket_s / 2)
    xs = [_x(tl.bucket_time(data.start, data.bucket_s, b) + half) for b in range(buckets)]
    z = [[math.log10(c) if c else None for c in data.rates[k]] for k in kinds]
    text = [[f"{c:,}" for c in data.rates[k]] for k in kinds]
    peak = max((max(row) for row in data.rates.values()), default=1) or 1
    ticks = [v for v in (1, 10, 100, 1000, 10_000, 100_000, 1_000_000) if v <= peak * 10]
    trace = go.Heatmap(
        x=xs,
        y=kinds,
        z=z,
        text=text,
        colorscale="Viridis",
        zmin=0,
        zmax=max(math.log10(peak), 1),
        hoverongaps=False,
        colorbar={
            "title": {"text": "events", "side": "right"},
            "tickvals": [math.log10(v) for v in ticks],
            "ticktext": [f"{v:,}" for v in ticks],
            "thickness": 12,
            "x": 1.01,
            "xpad": 4,
        },
        hovertemplate="%{y}<br>%{x}<br>%{text} events<extra></extra>",
    )
    height = max(220, 19 * len(kinds) + 90)
    layout = _layout(data, height, yaxis={"autorange": "reversed", "tickfont": {"size": 11}})
    return _figure([trace], layout)


def _sync_script(data: ReportData) -> str:
    """Zooming or panning one chart's time axis moves the others; a double click resets all."""
    window = json.dumps([_x(data.start), _x(data.end)])
    ids = json.dumps(list(CHART_IDS))
    return (
        "(function(){"
        f"var ids={ids},full={window},busy=false;"
        "function sync(src,ev){if(busy)return;var r;"
        "if(ev['xaxis.range[0]']!==undefined)r=[ev['xaxis.range[0]'],ev['xaxis.range[1]']];"
        "else if(ev['xaxis.range'])r=ev['xaxis.range'];else if(ev['xaxis.autorange'])r=full;else return;"
        "busy=true;Promise.all(ids.filter(function(o){return o!==src;}).map(function(o){"
        "return Plotly.relayout(o,{'xaxis.range':r});}))"
        ".then(function(){busy=false;},function(){busy=false;});}"
        "window.addEventListener('load',function(){ids.forEach(function(id){"
        "var gd=document.getElementById(id);"
        "if(gd&&gd.on)gd.on('plotly_relayout',function(ev){sync(id,ev);});});});"
        "})();"
    )


# --- writing it ---------------------------------------------------------------------------------


def check_writable(path: Path) -> Path:
    """The absolute path the report will be written to, once it is sure a file can be made there."""
    target = path.expanduser().absolute()
    if target.is_dir():
        raise ReportError(f"{target}: is a directory (give a file name, e.g. {target / 'report.html'})")
    folder = target.parent
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReportError(f"{folder}: cannot write there (permission denied)")
    if target.exists() and not os.access(target, os.W_OK):
        raise ReportError(f"{target}: cannot overwrite it (permission denied)")
    return target


def write_report(text: str, path: Path) -> Path:
    """Write the page next to `path` and rename it into place, so no half-written file is ever left."""
    target = check_writable(path)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise ReportError(f"{target.parent}: cannot write there ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ReportError(f"{target}: cannot write it ({exc.strerror})") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


# --- small things -------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


def _x(at: datetime) -> str:
    """A time as plotly's date axis takes it (plotly.js has no time zones: UTC, written without one)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _span(delta: timedelta) -> str:
    return span(delta)


def tokens(value: int) -> str:
    """A token count in a few characters: 8,963, 67k, 145.2M, 2.33B."""
    return f"{value / 1e9:.2f}B" if value >= 1_000_000_000 else _tokens(value)


def _width_words(seconds: int) -> str:
    if seconds % 3600 == 0 or seconds >= 3 * 3600:
        return f"{round(seconds / 3600)} h"
    if seconds >= 120:
        return f"{round(seconds / 60)} min"
    return f"{seconds} s"


def _wrap(text: str, width: int = 70) -> str:
    """Hover text cut into lines of about `width` characters (escaped: plotly hover text is HTML)."""
    words, lines, line = html.escape(text).split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return "<br>".join(lines[:6])


FONTS = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

STYLE = f"""
* {{ box-sizing: border-box; }}
body {{ margin: 0; background: #f6f7f9; color: #1d232a; font: 14px/1.45 {FONTS}; }}
main {{ max-width: 1400px; margin: 0 auto; padding: 24px 28px 40px; }}
header h1 {{ margin: 0 0 4px; font-size: 24px; }}
header .id {{ color: #6b7785; font-weight: normal; font-size: 16px; font-family: ui-monospace, monospace; }}
header .window {{ margin: 0 0 16px; color: #4a5562; }}
section {{ background: #fff; border: 1px solid #e1e5ea; border-radius: 8px; padding: 14px 18px;
  margin: 0 0 16px; }}
h2 {{ margin: 0 0 4px; font-size: 17px; }}
.note {{ margin: 0 0 6px; color: #5b6673; font-size: 13px; }}
.goal {{ margin: 6px 0 6px; }}
.outcome {{ margin: 0 0 12px; }}
.state {{ display: inline-block; padding: 0 8px; border-radius: 10px; background: #e1e5ea;
  font-weight: 600; }}
.state.done {{ background: #d4f0d4; }}
.state.failed, .state.tripped {{ background: #f8d4d4; }}
.state.awaiting_approval, .state.paused {{ background: #fde8c8; }}
.state.running, .state.scheduled {{ background: #d4e8f8; }}
dl {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; margin: 0; }}
.cell {{ background: #f6f7f9; border-radius: 6px; padding: 8px 12px; border-left: 4px solid #c6ced8; }}
.cell.ok {{ border-left-color: #2ca02c; }}
.cell.bad {{ border-left-color: #d62728; }}
dt {{ font-size: 12px; color: #5b6673; text-transform: uppercase; letter-spacing: .04em; }}
dd {{ margin: 2px 0 0; font-size: 15px; overflow-wrap: anywhere; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
th, td {{ text-align: left; padding: 5px 10px; border-bottom: 1px solid #e8ebef; vertical-align: top; }}
th {{ background: #f6f7f9; font-weight: 600; }}
td.when {{ white-space: nowrap; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
tr.total td {{ font-weight: 600; border-top: 2px solid #c6ced8; }}
tr.muted td {{ color: #5b6673; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }}
footer {{ color: #6b7785; font-size: 12px; margin-top: 8px; }}
"""
