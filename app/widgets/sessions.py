"""The Sessions tab: each session with when, how it ended, what it cost, its checkpoints, and
the verdicts that changed during it."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from longrun.app.format import VERDICT_STYLES, clock_time, span, tokens, usd
from longrun.app.widgets.pane import Pane
from longrun.app.widgets.verdicts import MARKS
from longrun.scheduler.spec.keys import RATCHET
from longrun.store import runs
from longrun.store.runs import CheckpointView, SessionView

END_STYLES = {
    "ended": "#50fa7b",
    "timed_out": "#ffb86c",
    "crashed": "bold #ff5555",
    "killed": "bold #ff5555",
    "running": "bold #8be9fd",
    "starting": "#8be9fd",
}


@dataclass(frozen=True)
class SessionRow:
    session: SessionView
    checkpoints: int
    changes: list[tuple[str, str, str]]
    """(feature, before, after) for each verdict that changed at this session's checkpoints."""


def session_rows(sessions: list[SessionView], checkpoints: list[CheckpointView]) -> list[SessionRow]:
    by_id = {c.id: c for c in checkpoints}
    out = []
    for s in sessions:
        mine = [c for c in checkpoints if c.session_id == s.id]
        changes: list[tuple[str, str, str]] = []
        for cp in mine:
            before = by_id[cp.parent_id].features if cp.parent_id in by_id else {}
            for feature, status in cp.features.items():
                was = before.get(feature, "unjudged")
                if status != was:
                    changes.append((feature, was, status))
        out.append(SessionRow(s, len(mine), changes))
    return out


def change_text(changes: list[tuple[str, str, str]]) -> Text:
    """The verdicts a session changed, grouped by where they went: "now pass: a, b" on one line."""
    went: dict[str, list[str]] = {}
    for feature, _, now in changes:
        if feature != RATCHET or now != "pass":
            went.setdefault(now, []).append(feature)
    if not went:
        return Text("—", style="dim")
    out = Text()
    for now, features in went.items():
        if out:
            out.append("\n")
        out.append(f"{MARKS.get(now, now)} ", style=VERDICT_STYLES.get(now, ""))
        out.append(", ".join(features))
    return out


class SessionsTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="sessions_down"),
        Binding("k", "cursor_up", "Up", show=False, id="sessions_up"),
    ]


class SessionsPane(Pane):
    FOCUS = "#sessions-table"

    def compose(self) -> ComposeResult:
        table = SessionsTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        for label in ("#", "STARTED", "ENDED", "HOW IT ENDED", "SPEND", "TOKENS", "CHECKPOINTS", "VERDICTS"):
            table.add_column(label)
        yield table

    def read(self) -> list[SessionRow]:
        store = self.app.store
        return session_rows(runs.list_sessions(store, self.run_id), runs.list_checkpoints(store, self.run_id))

    def show(self, data: list[SessionRow]) -> None:
        now = self.app.clock()
        table = self.query_one(SessionsTable)
        at = table.cursor_row
        table.clear()
        for row in data:
            s = row.session
            started = clock_time(s.started_at or s.created_at, now)
            if s.ended_at:
                ended = Text(
                    f"{clock_time(s.ended_at, now)} ({span(s.ended_at - (s.started_at or s.created_at))})"
                )
            else:
                ended = Text(f"{span(s.deadline_at - now)} left", style="bold #8be9fd")
            how = Text(s.state, style=END_STYLES.get(s.state, ""))
            if s.end_reason:
                how.append(f" · {s.end_reason}", style="")
            changes = change_text(row.changes)
            table.add_row(
                Text(str(s.n), style="bold"),
                Text(started),
                ended,
                how,
                Text(usd(s.usage.usd)),
                Text(tokens(s.usage.tokens)),
                Text(str(row.checkpoints)),
                changes,
                key=str(s.id),
                height=None,
            )
        if data:
            table.move_cursor(row=min(at, len(data) - 1), animate=False)
