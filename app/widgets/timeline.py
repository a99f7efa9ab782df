"""The Timeline tab: the run's time on a horizontal axis, sessions as bars coloured by how they
ended, markers for what happened, and beneath them cumulative spend against the budget and
features passing. Zoom (1 h, 6 h, 24 h, all) and pan; selecting a marker shows its event, and
enter shows it in the Events tab."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from longrun.app.format import clock_time, span, usd
from longrun.app.widgets.pane import Pane
from longrun.store import timeline as tl
from longrun.store.timeline import Marker, Point, Timeline

ZOOMS: tuple[tuple[str, timedelta | None], ...] = (
    ("1h", timedelta(hours=1)),
    ("6h", timedelta(hours=6)),
    ("24h", timedelta(hours=24)),
    ("all", None),
)

GUTTER = 10
"""Columns for the lane names on the left."""

SESSION_STYLES = {
    "ended": "#50fa7b",
    "timed_out": "#ffb86c",
    "crashed": "#ff5555",
    "killed": "#ff5555",
    "running": "#8be9fd",
    "starting": "#8be9fd",
}

LANES: tuple[tuple[str, dict[str, tuple[str, str]]], ...] = (
    ("checkpts", {"checkpoint": ("│", "#6272a4")}),
    ("verdicts", {"verdict_up": ("▲", "#50fa7b"), "verdict_down": ("▼", "bold #ff5555")}),
    (
        "people",
        {
            "approval_requested": ("⚑", "bold #ffb86c"),
            "approval_decided": ("✓", "#50fa7b"),
            "approval_expired": ("✗", "#ff5555"),
        },
    ),
    (
        "guards",
        {
            "breaker_tripped": ("⚡", "bold #ff5555"),
            "budget_warning": ("$", "bold #ffb86c"),
            "usage_limit_wait": ("‖", "#f1fa8c"),
            "usage_limit_warning": ("‖", "#f1fa8c"),
        },
    ),
    (
        "history",
        {"rewound": ("↶", "bold #f1fa8c"), "forked": ("↳", "#bd93f9"), "fork_made": ("↳", "#bd93f9")},
    ),
)
"""The marker lanes, each with the glyph and style of its kinds (a glyph, never colour alone)."""

BLOCKS = " ▁▂▃▄▅▆▇█"

LEGEND = {
    "checkpoint": "checkpoint",
    "verdict_up": "passes",
    "verdict_down": "regressed",
    "approval_requested": "asked",
    "approval_decided": "decided",
    "approval_expired": "expired",
    "breaker_tripped": "breaker",
    "budget_warning": "budget",
    "usage_limit_wait": "usage limit",
    "usage_limit_warning": "usage limit",
    "rewound": "rewind",
    "forked": "fork",
    "fork_made": "fork",
}


@dataclass(frozen=True)
class View:
    """The part of the run's time on screen."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 1.0)

    def column(self, at: datetime, width: int) -> int | None:
        """The column of a moment, or None when it is off screen."""
        x = (at - self.start).total_seconds() / self.seconds * width
        return int(x) if 0 <= x < width else None

    def moment(self, column: float, width: int) -> datetime:
        return self.start + timedelta(seconds=self.seconds * column / width)


def values_at(points: list[Point], moments: list[datetime]) -> list[float | None]:
    """A step curve's value at each moment (the last point at or before it)."""
    times = [p.ts for p in points]
    out: list[float | None] = []
    for at in moments:
        i = bisect.bisect_right(times, at) - 1
        out.append(points[i].value if i >= 0 else None)
    return out


def emit(out: Text, cells: list[tuple[str, str]]) -> None:
    """Append a row of (character, style) cells, one span per run of the same style."""
    run: list[str] = []
    current = None
    for ch, style in cells:
        if style != current and run:
            out.append("".join(run), style=current or "")
            run = []
        current = style
        run.append(ch)
    if run:
        out.append("".join(run), style=current or "")


class TimelineView(Widget, can_focus=True):
    """The drawing: lanes, the spend chart and the features chart, over the visible window."""

    DEFAULT_CSS = """
    TimelineView { height: auto; padding: 0 1; }
    TimelineView:focus { background: $boost; }
    """

    selected: reactive[int] = reactive(-1, layout=False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data: Timeline | None = None
        self.view: View | None = None
        self._times: tuple[int, list[datetime]] = (0, [])
        self._visible: tuple[Any, list[Marker]] = (None, [])

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return 2 + 1 + len(LANES) + 1 + 6 + 1 + 4

    def visible_markers(self) -> list[Marker]:
        """The markers in the window (found by bisection: markers are in time order)."""
        if self.data is None or self.view is None:
            return []
        key = (id(self.data), self.view)
        if self._visible[0] != key:
            if self._times[0] != id(self.data):
                self._times = (id(self.data), [m.ts for m in self.data.markers])
            times = self._times[1]
            first = bisect.bisect_left(times, self.view.start)
            last = bisect.bisect_left(times, self.view.end)
            self._visible = (key, self.data.markers[first:last])
        return self._visible[1]

    def render(self) -> Text:
        if self.data is None or self.view is None:
            return Text("reading…", style="dim")
        width = max(self.size.width - GUTTER - 2, 10)
        data, view = self.data, self.view
        out = Text(no_wrap=True, overflow="crop")
        self._axis(out, view, width)
        self._sessions(out, data, view, width)
        marked = self.visible_markers()
        cursor = marked[self.selected] if 0 <= self.selected < len(marked) else None
        cursor_col = view.column(cursor.ts, width) if cursor else None
        rows = {name: [(" ", "")] * width for name, _ in LANES}
        lane_of = {kind: (name, look) for name, kinds in LANES for kind, look in kinds.items()}
        for m in marked:
            if m.kind in lane_of and (col := view.column(m.ts, width)) is not None:
                name, look = lane_of[m.kind]
                rows[name][col] = look
        for name, _ in LANES:
            self._lane(out, name, rows[name], cursor_col)
        out.append("\n")
        self._spend(out, data, view, width)
        self._features(out, data, view, width)
        return out

    def _lane(self, out: Text, name: str, row: list[tuple[str, str]], cursor: int | None) -> None:
        out.append(f"{name:>{GUTTER - 1}} ", style="dim")
        if cursor is not None:
            glyph, style = row[cursor]
            row[cursor] = (glyph if glyph != " " else "┊", f"reverse {style}".strip())
        emit(out, row)
        out.append("\n")

    def _axis(self, out: Text, view: View, width: int) -> None:
        ticks = max(2, width // 14)
        line = [" "] * width
        marks = [" "] * width
        for i in range(ticks):
            col = int(i * width / ticks)
            label = view.moment(col, width).strftime("%H:%M:%S" if view.seconds < 2 * 3600 else "%H:%M")
            for j, ch in enumerate(label):
                if col + j < width:
                    line[col + j] = ch
            marks[col] = "╵"
        out.append(" " * GUTTER)
        out.append("".join(line), style="dim")
        out.append("\n" + " " * GUTTER)
        out.append("".join(marks), style="dim")
        out.append("\n")

    def _sessions(self, out: Text, data: Timeline, view: View, width: int) -> None:
        out.append(f"{'sessions':>{GUTTER - 1}} ", style="dim")
        cells: list[tuple[str, str]] = [("·", "dim #44475a")] * width
        for s in data.sessions:
            end = s.end or data.end
            first = max(0, int((s.start - view.start).total_seconds() / view.seconds * width))
            last = min(width - 1, int((end - view.start).total_seconds() / view.seconds * width))
            if last < 0 or first >= width:
                continue
            style = SESSION_STYLES.get(s.state, "#6272a4")
            label = f"{s.n}"
            for col in range(first, max(first, last) + 1):
                k = col - first
                ch = label[k] if k < len(label) and last - first >= len(label) + 1 else "█"
                cells[col] = (ch, f"reverse {style}" if ch != "█" else style)
        emit(out, cells)
        out.append("\n")

    def _spend(self, out: Text, data: Timeline, view: View, width: int) -> None:
        rows = 6
        values = values_at(data.spend, [view.moment(col + 1, width) for col in range(width)])
        top = max([v for v in values if v is not None] + [data.budget_usd or 0.0, 0.01])
        budget_row = None
        if data.budget_usd:
            budget_row = min(rows - 1, int(data.budget_usd / top * rows - 1e-9))
        for r in reversed(range(rows)):
            label = {rows - 1: usd(top, 2), rows - 2: "spend", 0: "$0"}.get(r, "")
            if r == budget_row:
                label = f"cap {usd(data.budget_usd or 0, 0)}"
            out.append(f"{label:>{GUTTER - 1}} ", style="#ff5555" if r == budget_row else "dim")
            cells = []
            for v in values:
                fill = 0.0 if v is None else v / top * rows - r
                ch = BLOCKS[max(0, min(8, int(fill * 8)))]
                if ch == " " and r == budget_row:
                    cells.append(("─", "#ff5555"))
                else:
                    style = "#ffb86c" if data.budget_usd and v and v >= data.budget_usd * 0.8 else "#8be9fd"
                    cells.append((ch, style))
            emit(out, cells)
            out.append("\n")

    def _features(self, out: Text, data: Timeline, view: View, width: int) -> None:
        rows = 3
        total = max(data.features_total, 1)
        values = values_at(data.features, [view.moment(col + 1, width) for col in range(width)])
        for r in reversed(range(rows)):
            label = f"{data.features_total} feat" if r == rows - 1 else ("passing" if r == rows - 2 else "0")
            out.append(f"{label:>{GUTTER - 1}} ", style="dim")
            blocks = (
                BLOCKS[max(0, min(8, int((0.0 if v is None else v / total * rows - r) * 8)))] for v in values
            )
            out.append("".join(blocks), style="#50fa7b")
            out.append("\n")


class TimelinePane(Pane):
    FOCUS = "#timeline-view"
    BINDINGS = [
        # Each pair shows once in the footer ("←→ Marker"); `?` lists both keys of each.
        Binding(
            "left,h",
            "step(-1)",
            "Marker",
            key_display="←→",
            tooltip="The previous marker",
            id="timeline_prev",
        ),
        Binding(
            "right,l", "step(1)", "Next marker", tooltip="The next marker", id="timeline_next", show=False
        ),
        Binding(
            "z",
            "zoom(1)",
            "Zoom",
            key_display="z Z",
            tooltip="1 h → 6 h → 24 h → all",
            id="timeline_zoom_out",
        ),
        Binding(
            "Z", "zoom(-1)", "Zoom in", tooltip="all → 24 h → 6 h → 1 h", id="timeline_zoom_in", show=False
        ),
        Binding(
            "left_square_bracket",
            "pan(-1)",
            "Pan",
            key_display="[ ]",
            tooltip="Pan half a window back",
            id="timeline_back",
        ),
        Binding(
            "right_square_bracket",
            "pan(1)",
            "Later",
            tooltip="Pan half a window forward",
            id="timeline_forward",
            show=False,
        ),
        Binding(
            "enter",
            "show_event",
            "In Events",
            tooltip="The selected marker in the Events tab",
            id="timeline_go",
        ),
    ]

    def __init__(self, run_id: str, **kwargs: Any) -> None:
        super().__init__(run_id, **kwargs)
        self.zoom = len(ZOOMS) - 1
        self.window_end: datetime | None = None
        """The end of the visible window; None follows the run's present."""

    def compose(self) -> ComposeResult:
        yield Static(id="timeline-head")
        yield TimelineView(id="timeline-view")
        yield Static(id="timeline-marker")

    def read(self) -> Timeline:
        return tl.timeline(self.app.store, self.run_id, now=self.app.clock())

    def show(self, data: Timeline) -> None:
        view = self.query_one(TimelineView)
        before = view.visible_markers()
        chosen = before[view.selected] if 0 <= view.selected < len(before) else None
        view.data = data
        self._place(keep=chosen)

    def _place(self, keep: Marker | None = None) -> None:
        view = self.query_one(TimelineView)
        data = view.data
        if data is None:
            return
        name, length = ZOOMS[self.zoom]
        end = self.window_end or data.end
        start = data.start if length is None else end - length
        if length is None:
            end = data.end
        view.view = View(start, max(end, start + timedelta(minutes=1)))
        marked = view.visible_markers()
        if keep is not None and keep in marked:
            view.selected = marked.index(keep)
        elif not (0 <= view.selected < len(marked)):
            view.selected = len(marked) - 1
        head = Text(f"zoom {name}", style="bold")
        head.append(
            f" · {view.view.start:%b %d %H:%M} → {view.view.end:%b %d %H:%M} UTC"
            f" ({span(view.view.end - view.view.start)}) · {len(data.sessions)} sessions · "
            f"{len(marked)} markers here",
            style="dim",
        )
        self.query_one("#timeline-head", Static).update(head)
        view.refresh()
        self._show_marker()

    def _show_marker(self) -> None:
        view = self.query_one(TimelineView)
        marked = view.visible_markers()
        box = self.query_one("#timeline-marker", Static)
        legend = Text("sessions ", style="dim")
        for word, state in (
            ("ended", "ended"),
            ("timed out", "timed_out"),
            ("crashed", "crashed"),
            ("running", "running"),
        ):
            legend.append("█", style=SESSION_STYLES[state])
            legend.append(f" {word}  ", style="dim")
        shown: set[str] = set()
        for _, kinds in LANES:
            for kind, (glyph, style) in kinds.items():
                label = LEGEND.get(kind, kind)
                if label not in shown:  # kinds that share a mark share a legend entry
                    shown.add(label)
                    legend.append(glyph, style=style)
                    legend.append(f" {label}  ", style="dim")
        if not (0 <= view.selected < len(marked)):
            box.update(legend)
            return
        m = marked[view.selected]
        now = view.data.end if view.data else m.ts
        line = Text(f"{clock_time(m.ts, now)}  ", style="bold")
        line.append(m.kind.replace("_", " "), style="bold #8be9fd")
        line.append(f"  {m.label}")
        if m.seq:
            line.append(f"  (event {m.seq})", style="dim")
        line.append("\n")
        line.append_text(legend)
        box.update(line)

    def action_step(self, delta: int) -> None:
        view = self.query_one(TimelineView)
        marked = view.visible_markers()
        if not marked:
            return
        view.selected = max(0, min(len(marked) - 1, view.selected + delta))
        view.refresh()
        self._show_marker()

    def action_zoom(self, delta: int) -> None:
        self.zoom = max(0, min(len(ZOOMS) - 1, self.zoom + delta))
        view = self.query_one(TimelineView)
        marked = view.visible_markers()
        keep = marked[view.selected] if 0 <= view.selected < len(marked) else None
        span = ZOOMS[self.zoom][1]
        if keep is not None and span is not None:
            half = span / 2
            self.window_end = min(keep.ts + half, view.data.end) if view.data else None
        if span is None:
            self.window_end = None
        self._place(keep=keep)

    def action_pan(self, direction: int) -> None:
        view = self.query_one(TimelineView)
        if view.data is None or view.view is None or ZOOMS[self.zoom][1] is None:
            return
        length = ZOOMS[self.zoom][1]
        assert length is not None
        end = (self.window_end or view.data.end) + direction * length / 2
        self.window_end = min(max(end, view.data.start + length), view.data.end)
        view.selected = -1
        self._place()

    async def action_show_event(self) -> None:
        view = self.query_one(TimelineView)
        marked = view.visible_markers()
        if not (0 <= view.selected < len(marked)):
            return
        m = marked[view.selected]
        screen: Any = self.screen
        await screen.show_in_events(m.seq, m.ts)
