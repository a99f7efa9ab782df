"""The Events tab: the run's log, newest last, following live; filtered by kind, session and
text; jumps to a time. It holds a window of the log, never the whole of it: moving past either
end of the window reads the next one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from longrun.app.format import clock_time, one_line
from longrun.app.messages import Loaded
from longrun.app.screens.event import EventScreen
from longrun.app.screens.modals import AskScreen
from longrun.app.widgets.pane import Pane
from longrun.store import board, runs
from longrun.store.board import EventFilter, EventWindow
from longrun.store.errors import LongrunError
from longrun.store.log import EventView

WINDOW = 200
"""Events read at a time; the table holds at most two windows."""

KIND_STYLES = {
    "approval_requested": "bold #ffb86c",
    "approval_decided": "#ffb86c",
    "breaker_tripped": "bold #ff5555",
    "session_crashed": "bold #ff5555",
    "budget_warning": "#ffb86c",
    "checkpoint": "#8be9fd",
    "verdict": "#bd93f9",
    "judged": "#bd93f9",
    "session_started": "bold",
    "session_ended": "bold",
    "rewound": "bold #f1fa8c",
    "forked": "bold #f1fa8c",
}


def parse_filter(text: str) -> EventFilter | str:
    """`kind:tool_call,model_call session:3 some words` → a filter, or the problem with it."""
    kinds: list[str] = []
    session: int | None = None
    words: list[str] = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key in ("kind", "k"):
            kinds += [k for k in value.split(",") if k]
        elif sep and key in ("session", "s"):
            if not value.isdigit():
                return f"session:{value}: a session number, like session:3"
            session = int(value)
        else:
            words.append(token)
    return EventFilter(tuple(kinds), session, " ".join(words))


def parse_time(text: str, now: datetime) -> datetime | str:
    """`14:05`, `14:05:30` (today, UTC) or an ISO date and time → a moment, or the problem."""
    raw = text.strip()
    try:
        if len(raw) <= 8 and ":" in raw:
            parts = [int(p) for p in raw.split(":")]
            return now.replace(
                hour=parts[0], minute=parts[1], second=parts[2] if len(parts) > 2 else 0, microsecond=0
            )
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return f"not a time: {raw!r} (try 14:05 or 2026-11-20T14:05)"
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


OPEN_EVENT = Binding(
    "enter", "select_cursor", "Event", tooltip="The selected event in full", id="events_open"
)
"""The table's own `enter` (which selects the row; the pane then shows that event whole), named
for the footer and the help screen."""


class EventTable(DataTable[Text]):
    """The log's window; moving past its top or bottom asks the pane for the next window."""

    BINDINGS = [
        OPEN_EVENT,
        Binding("j", "cursor_down", "Down", show=False, id="events_down"),
        Binding("k", "cursor_up", "Up", show=False, id="events_up"),
    ]

    @dataclass
    class PastEnd(Message):
        """The person moved up from the first row (`older`) or down from the last."""

        older: bool

    def action_cursor_up(self) -> None:
        if self.cursor_row == 0:
            self.post_message(self.PastEnd(older=True))
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        if self.cursor_row >= self.row_count - 1:
            self.post_message(self.PastEnd(older=False))
        super().action_cursor_down()

    def action_page_up(self) -> None:
        if self.cursor_row == 0:
            self.post_message(self.PastEnd(older=True))
        super().action_page_up()

    def action_page_down(self) -> None:
        if self.cursor_row >= self.row_count - 1:
            self.post_message(self.PastEnd(older=False))
        super().action_page_down()


class EventsPane(Pane):
    FOCUS = "#events-table"
    BINDINGS = [
        Binding("slash", "filter", "Filter", tooltip="kind:KIND session:N and words", id="events_filter"),
        Binding(
            "g", "goto", "Go to time", tooltip="Jump to the first event at or after a time", id="events_goto"
        ),
        Binding("G,end", "follow", "Follow", tooltip="The newest events, following live", id="events_follow"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="events_clear"),
    ]

    def __init__(self, run_id: str, **kwargs: Any) -> None:
        super().__init__(run_id, **kwargs)
        self.where = EventFilter()
        self.events: list[EventView] = []
        self.has_older = False
        self.has_newer = False
        self.following = True
        self.last_seq = 0
        self.sessions: dict[int, int] = {}
        self._window_read = False
        self._pinned = False
        """A jump put the window somewhere: a read of the newest events must not move it."""

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter: kind:tool_call session:3 git push   (enter to apply, esc to clear)",
            id="events-filter",
        )
        yield Static(id="events-status")
        table = EventTable(id="events-table", cursor_type="row")
        for label, width in (("SEQ", 7), ("TIME", 9), ("S", 3), ("KIND", 22), ("DATA", None)):
            table.add_column(label, width=width)
        yield table

    def on_mount(self) -> None:
        self.query_one("#events-filter", Input).display = False

    # --- reading --------------------------------------------------------------------------------

    def read(self) -> tuple[bool, EventWindow, dict[int, int]]:
        """(whether to append, the window, session id → number); what to do is decided here, once."""
        sessions = {s.id: s.n for s in runs.list_sessions(self.app.store, self.run_id)}
        store, where = self.app.store, self.where
        if self.following and self.events and self._window_read:
            after = self.events[-1].seq
            return (
                True,
                board.event_window(store, self.run_id, after=after, limit=WINDOW, where=where),
                sessions,
            )
        return False, board.event_window(store, self.run_id, limit=WINDOW, where=where), sessions

    def show(self, data: tuple[bool, EventWindow, dict[int, int]]) -> None:
        appending, window, self.sessions = data
        self._window_read = True
        self.last_seq = max(self.last_seq, window.last_seq)
        if self._pinned and not appending:
            self._status()
            return
        if appending:
            newest = self.events[-1].seq if self.events else 0
            fresh = [e for e in window.events if e.seq > newest]
            if fresh:
                self._append(fresh)
            self._status()
            return
        self._replace(window, at_end=True)

    def refresh_live(self) -> None:
        """New events, when following (called on every poll of the store)."""
        if self.following and self.ready:
            self.load()

    def _replace(self, window: EventWindow, *, at_end: bool, at_seq: int | None = None) -> None:
        self.events = list(window.events)
        self.has_older = window.has_older
        self.has_newer = window.has_newer
        self.last_seq = max(self.last_seq, window.last_seq)
        table = self.query_one(EventTable)
        table.clear()
        for event in self.events:
            table.add_row(*self._cells(event), key=str(event.seq))
        if self.events:
            row = len(self.events) - 1 if at_end else 0
            if at_seq is not None:
                row = next((i for i, e in enumerate(self.events) if e.seq >= at_seq), row)
            table.move_cursor(row=row, animate=False)
        self._status()

    def _append(self, events: list[EventView]) -> None:
        table = self.query_one(EventTable)
        at_bottom = table.cursor_row >= table.row_count - 1
        for event in events:
            table.add_row(*self._cells(event), key=str(event.seq))
        self.events += events
        excess = len(self.events) - 2 * WINDOW
        if excess > 0:
            for event in self.events[:excess]:
                table.remove_row(str(event.seq))
            self.events = self.events[excess:]
            self.has_older = True
        if at_bottom:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def _cells(self, event: EventView) -> list[Text]:
        now = self.app.clock()
        session = self.sessions.get(event.session_id or -1)
        return [
            Text(str(event.seq), style="dim", justify="right"),
            Text(clock_time(event.ts, now)),
            Text(str(session) if session else "", style="dim"),
            Text(event.kind, style=KIND_STYLES.get(event.kind, "")),
            Text(one_line(event.data, 200)),
        ]

    def _status(self) -> None:
        parts = []
        if self.events:
            parts.append(f"seq {self.events[0].seq}–{self.events[-1].seq} of {self.last_seq:,}")
        else:
            parts.append("no events" + (" match" if not self.where.empty else ""))
        if not self.where.empty:
            bits = []
            if self.where.kinds:
                bits.append("kind " + ",".join(self.where.kinds))
            if self.where.session_n is not None:
                bits.append(f"session {self.where.session_n}")
            if self.where.text:
                bits.append(f"“{self.where.text}”")
            parts.append("filter: " + " · ".join(bits) + " (esc clears)")
        if self.following:
            parts.append("● following live")
        else:
            parts.append("G follows live")
        if self.has_older:
            parts.append("↑ older above")
        self.query_one("#events-status", Static).update(Text("  ·  ".join(parts), style="dim"))

    # --- moving past the window's ends ----------------------------------------------------------

    def on_event_table_past_end(self, message: EventTable.PastEnd) -> None:
        if not self.events:
            return
        if message.older and self.has_older:
            self._page(before=self.events[0].seq)
        elif not message.older and self.has_newer:
            self._page(after=self.events[-1].seq)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "events-table" or not self.events:
            return
        if event.cursor_row != event.data_table.cursor_row:
            return  # a highlight from before the table was filled again
        if event.cursor_row < len(self.events) - 1 and self.following and event.data_table.has_focus:
            self.following = False
            self._status()

    def _page(self, *, before: int | None = None, after: int | None = None) -> None:
        keep = self.events[:WINDOW] if before is not None else self.events[-WINDOW:]
        where, store, run = self.where, self.app.store, self.run_id

        def read() -> None:
            try:
                window = board.event_window(store, run, before=before, after=after, limit=WINDOW, where=where)
            except LongrunError as exc:
                self.post_message(Loaded("events-page", None, exc.message))
                return
            self.post_message(Loaded("events-page", window, extra={"before": before, "keep": keep}))

        self.run_worker(read, thread=True, exclusive=True, exit_on_error=False, group="events-page")

    def on_loaded(self, message: Loaded) -> None:
        if message.what not in ("events-page", "events-jump"):
            super().on_loaded(message)
            return
        message.stop()
        if message.error:
            self.app.notify(message.error, severity="error")
            return
        window: EventWindow = message.data
        if message.what == "events-jump":
            self._replace(window, at_end=False)
            self.query_one(EventTable).focus()
            return
        keep: list[EventView] = message.extra["keep"]
        if message.extra["before"] is not None:
            merged = EventWindow(window.events + keep, window.has_older, True, window.last_seq)
            self._replace(merged, at_end=False, at_seq=keep[0].seq if keep else None)
            table = self.query_one(EventTable)
            table.move_cursor(row=max(len(window.events) - 1, 0), animate=False)
        else:
            merged = EventWindow(keep + window.events, True, window.has_newer, window.last_seq)
            self._replace(merged, at_end=False, at_seq=window.events[0].seq if window.events else None)

    # --- actions --------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#events-filter", Input)
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "events-filter":
            return
        event.stop()
        parsed = parse_filter(event.value)
        if isinstance(parsed, str):
            self.app.notify(parsed, severity="error")
            return
        self.where = parsed
        self.following = True
        self._pinned = False
        self._window_read = False
        if parsed.empty:
            event.input.display = False
        self.query_one(EventTable).focus()
        self.load()

    def action_clear_filter(self) -> None:
        box = self.query_one("#events-filter", Input)
        box.value = ""
        box.display = False
        if not self.where.empty:
            self.where = EventFilter()
            self.following = True
            self._pinned = False
            self._window_read = False
            self.load()
        self.query_one(EventTable).focus()

    def action_follow(self) -> None:
        self.following = True
        self._pinned = False
        self._window_read = False
        self.load()

    def action_goto(self) -> None:
        now = self.app.clock()

        def check(value: str) -> str | None:
            parsed = parse_time(value, now)
            return parsed if isinstance(parsed, str) else None

        def go(value: str | None) -> None:
            if value:
                moment = parse_time(value, now)
                assert isinstance(moment, datetime)
                self.jump_to(moment)

        self.app.push_screen(
            AskScreen("Go to a time", "The first event at or after (UTC):", placeholder="14:05", check=check),
            go,
        )

    def jump_to(self, moment: datetime) -> None:
        """The first event at or after a moment, at the top of the window."""
        self._jump(lambda store, run: board.seq_at(store, run, moment))

    def jump_to_seq(self, seq: int) -> None:
        """One event, at the top of the window, with the filter cleared so it shows."""
        if not self.where.empty:
            self.where = EventFilter()
            box = self.query_one("#events-filter", Input)
            box.value, box.display = "", False
        self._jump(lambda store, run: seq)

    def _jump(self, find: Any) -> None:
        self.following = False
        self._pinned = True
        self._window_read = True
        where, store, run = self.where, self.app.store, self.run_id

        def read() -> None:
            seq = find(store, run)
            window = board.event_window(store, run, after=max(seq - 1, 0), limit=WINDOW, where=where)
            self.post_message(Loaded("events-jump", window, extra={"seq": seq}))

        self.run_worker(read, thread=True, exclusive=True, exit_on_error=False, group="events-page")

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        """`enter` on a row (or a click on the highlighted one): that event, whole."""
        if message.data_table.id != "events-table":
            return
        message.stop()
        seq = int(message.row_key.value or 0)
        event = next((e for e in self.events if e.seq == seq), None)
        if event is not None:
            self.app.push_screen(
                EventScreen(event, self.sessions.get(event.session_id or -1), self.app.clock())
            )
