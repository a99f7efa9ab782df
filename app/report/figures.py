"""The report's plotly figures, one per chart, drawn from a `ReportData`.

Every chart spans the window on its time axis, with the same margins as the others. A figure is
the plain dict plotly.js takes (`{"data": [...], "layout": {...}}`), as `go.Figure(...).to_dict()`
would give it: building `go.Figure`s validated every value and deep-copied the template into each
of them, a second of fixed cost for five charts whose every value is written here. The template
is plotly's own `plotly_white`, read once from the JSON plotly ships it as.
"""

from __future__ import annotations

import functools
import html
import json
import math
import pkgutil
from datetime import datetime, timedelta
from typing import Any

from longrun.app.format import span, usd
from longrun.app.report.collect import ReportData, SessionRow
from longrun.app.report.look import FONTS, MARKERS, OUTCOMES, axis_time, tokens, when
from longrun.store import audit
from longrun.store import timeline as tl

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

MARGIN = {"l": 150, "r": 90, "t": 36, "b": 40}
"""The same left and right margins on every chart, so their time axes line up."""


TEMPLATE = "plotly_white"


@functools.cache
def template() -> dict[str, Any]:
    """The layout template every chart has, as a `go.Figure` expands its name (a test holds
    the two the same): the JSON in plotly's package data, which `plotly.io.templates` loads."""
    try:
        shipped = pkgutil.get_data("plotly", f"package_data/templates/{TEMPLATE}.json")
    except OSError:
        shipped = None
    if shipped is None:  # a plotly that keeps its templates elsewhere: ask it (slower)
        import plotly.io

        found: dict[str, Any] = plotly.io.templates[TEMPLATE].to_plotly_json()
        return found
    loaded: dict[str, Any] = json.loads(shipped)
    return loaded


def _layout(data: ReportData, height: int, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": template(),
        "height": height,
        "margin": MARGIN,
        "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "font": {"size": 11}},
        "xaxis": {
            "type": "date",
            "range": [axis_time(data.start), axis_time(data.end)],
            "title": {"text": "UTC"},
        },
        "font": {"family": FONTS, "size": 12},
    }
    layout.update(extra)
    return layout


def _figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    return {"data": traces, "layout": layout}


def spend_figure(data: ReportData) -> dict[str, Any]:
    s = data.summary
    xs = [axis_time(t) for t, _ in data.spend]
    ys = [v for _, v in data.spend]
    traces: list[Any] = [
        {
            "x": xs,
            "y": ys,
            "mode": "lines",
            "name": "spend",
            "line": {"color": "#1f77b4", "width": 2},
            "fill": "tozeroy",
            "fillcolor": "rgba(31,119,180,0.08)",
            "hovertemplate": "%{x}<br>$%{y:,.2f} spent<extra></extra>",
            "type": "scatter",
        }
    ]
    top = max(ys) if ys else 0.0
    if s.budget_usd:
        traces.append(
            {
                "x": [axis_time(data.start), axis_time(data.end)],
                "y": [s.budget_usd, s.budget_usd],
                "mode": "lines",
                "name": f"budget {usd(s.budget_usd)}",
                "line": {"color": "#d62728", "dash": "dash", "width": 1.5},
                "hovertemplate": f"budget {usd(s.budget_usd)}<extra></extra>",
                "type": "scatter",
            }
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
                "x0": axis_time(m.ts),
                "x1": axis_time(m.ts),
                "y0": 0,
                "y1": 1,
                "line": {"color": MARKERS[m.kind][1], "width": 1, "dash": "dot"},
                "opacity": 0.6,
            }
        )
    for label, marks in groups.items():
        _, color, symbol = MARKERS[marks[0].kind]
        traces.append(
            {
                "x": [axis_time(m.ts) for m in marks],
                "y": [_spend_at(data, m.ts) for m in marks],
                "mode": "markers",
                "name": f"{label} ({len(marks)})",
                "marker": {
                    "color": color,
                    "symbol": symbol,
                    "size": 11,
                    "line": {"color": "white", "width": 1},
                },
                "hovertext": [f"{when(m.ts)}<br>{_wrap(m.label)}" for m in marks],
                "hoverinfo": "text",
                "type": "scatter",
            }
        )
    layout = _layout(
        data,
        420,
        **({"shapes": shapes} if shapes else {}),  # as plotly.py writes it: no empty list
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


def tokens_figure(data: ReportData) -> dict[str, Any]:
    """One line per kind on a log scale (cache reads dwarf the rest); a gap where no call was made."""
    buckets = len(data.spend) - 1
    by_bucket = {round((t - data.start).total_seconds() / data.bucket_s): kinds for t, kinds in data.tokens}
    half = timedelta(seconds=data.bucket_s / 2)
    xs = [axis_time(audit.bucket_time(data.start, data.bucket_s, b) + half) for b in range(buckets)]
    traces = []
    for kind, label in TOKEN_LABELS.items():
        ys = [(by_bucket[b][kind] or None) if b in by_bucket else None for b in range(buckets)]
        total = sum(kinds[kind] for _, kinds in data.tokens)
        traces.append(
            {
                "x": xs,
                "y": ys,
                "mode": "lines+markers",
                "name": f"{label} ({tokens(total)})",
                "line": {"color": TOKEN_COLORS[kind], "width": 2},
                "marker": {"size": 4},
                "connectgaps": False,
                "hovertemplate": f"%{{y:,}} {label}<extra></extra>",
                "type": "scatter",
            }
        )
    layout = _layout(
        data,
        340,
        hovermode="x unified",
        yaxis={"title": {"text": "tokens (log scale)"}, "type": "log", "dtick": 1, "exponentformat": "SI"},
    )
    return _figure(traces, layout)


def features_figure(data: ReportData) -> dict[str, Any]:
    total = data.summary.features_total
    traces: list[Any] = [
        {
            "x": [axis_time(t) for t, _ in data.features],
            "y": [v for _, v in data.features],
            "mode": "lines",
            "line": {"shape": "hv", "color": "#2ca02c", "width": 2},
            "name": "features passing",
            "hovertemplate": "%{x}<br>%{y} passing<extra></extra>",
            "type": "scatter",
        }
    ]
    passing = dict(data.features)
    for kind, label, color, symbol in (
        ("verdict_up", "now passes", "#2ca02c", "triangle-up"),
        ("verdict_down", "no longer passes", "#d62728", "triangle-down"),
    ):
        changes = [m for m in data.verdicts if m.kind == kind]
        if changes:
            traces.append(
                {
                    "x": [axis_time(m.ts) for m in changes],
                    "y": [passing.get(m.ts, 0) for m in changes],
                    "mode": "markers",
                    "name": label,
                    "marker": {"color": color, "symbol": symbol, "size": 10},
                    "hovertext": [f"{when(m.ts)}<br>{_wrap(m.label)}" for m in changes],
                    "hoverinfo": "text",
                    "type": "scatter",
                }
            )
    layout = _layout(
        data,
        280,
        yaxis={"title": {"text": f"of {total}"}, "range": [-0.2, max(total, 1) + 0.4], "dtick": 1},
    )
    return _figure(traces, layout)


def gantt_figure(data: ReportData) -> dict[str, Any]:
    by_outcome: dict[str, list[SessionRow]] = {}
    for s in data.sessions:
        by_outcome.setdefault(s.outcome, []).append(s)
    traces = []
    for outcome, rows in by_outcome.items():
        label, color = OUTCOMES.get(outcome, (outcome, "#7f7f7f"))
        starts = [max(s.start, data.start) for s in rows]
        ends = [min(s.end or data.end, data.end) for s in rows]
        traces.append(
            {
                "orientation": "h",
                "y": [f"session {s.n}" for s in rows],
                "base": [axis_time(t) for t in starts],
                "x": [max(1.0, (e - b).total_seconds() * 1000) for b, e in zip(starts, ends, strict=True)],
                "name": f"{label} ({len(rows)})",
                "marker": {"color": color},
                "customdata": [
                    [
                        s.n,
                        when(s.start),
                        when(s.end) if s.end else "—",
                        span((s.end or data.end) - s.start),
                        usd(s.usd),
                        tokens(s.tokens),
                        s.end_reason or s.state,
                    ]
                    for s in rows
                ],
                "hovertemplate": (
                    "session %{customdata[0]}<br>%{customdata[1]} → %{customdata[2]} (%{customdata[3]})<br>"
                    f"{label}: %{{customdata[6]}}<br>"
                    "%{customdata[4]}, %{customdata[5]} tokens<extra></extra>"
                ),
                "type": "bar",
            }
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


def heatmap_figure(data: ReportData) -> dict[str, Any]:
    from plotly.colors import sequential

    kinds = list(data.rates)
    buckets = len(data.spend) - 1
    half = timedelta(seconds=data.bucket_s / 2)
    xs = [axis_time(audit.bucket_time(data.start, data.bucket_s, b) + half) for b in range(buckets)]
    z = [[math.log10(c) if c else None for c in data.rates[k]] for k in kinds]
    text = [[f"{c:,}" for c in data.rates[k]] for k in kinds]
    peak = max((max(row) for row in data.rates.values()), default=1) or 1
    ticks = [v for v in (1, 10, 100, 1000, 10_000, 100_000, 1_000_000) if v <= peak * 10]
    trace = {
        "x": xs,
        "y": kinds,
        "z": z,
        "text": text,
        "colorscale": _evenly(sequential.Viridis),
        "zmin": 0,
        "zmax": max(math.log10(peak), 1),
        "hoverongaps": False,
        "colorbar": {
            "title": {"text": "events", "side": "right"},
            "tickvals": [math.log10(v) for v in ticks],
            "ticktext": [f"{v:,}" for v in ticks],
            "thickness": 12,
            "x": 1.01,
            "xpad": 4,
        },
        "hovertemplate": "%{y}<br>%{x}<br>%{text} events<extra></extra>",
        "type": "heatmap",
    }
    height = max(220, 19 * len(kinds) + 90)
    layout = _layout(data, height, yaxis={"autorange": "reversed", "tickfont": {"size": 11}})
    return _figure([trace], layout)


def _evenly(colors: list[str]) -> list[list[Any]]:
    """A colour scale of colours spaced evenly from 0 to 1: a named scale as plotly spells it out."""
    last = len(colors) - 1
    return [[i / last, color] for i, color in enumerate(colors)]


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
