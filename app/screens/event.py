"""One event of a run's log, whole: its kind, seq, time and session, and its data as pretty JSON
(the Events table shows the data on one line, cut to the column's width)."""

from __future__ import annotations

from datetime import datetime

from rich.json import JSON
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from longrun.app.screens.modals import MODAL_CSS
from longrun.store.log import EventView


class EventScreen(ModalScreen[None]):
    """An event of the log in full, scrollable; esc closes it."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="EventScreen")
        + """
    EventScreen > Vertical { width: 110; height: 90%; }
    EventScreen #event-head { height: auto; margin-bottom: 1; }
    EventScreen #event-data { height: 1fr; }
    """
    )
    BINDINGS = [Binding("escape,q", "close", "Close", tooltip="Back to the Events tab", id="event_close")]

    def __init__(self, event: EventView, session_n: int | None, now: datetime) -> None:
        super().__init__()
        self.event = event
        self.session_n = session_n
        self.now = now

    def compose(self) -> ComposeResult:
        event = self.event
        with Vertical():
            yield Label(f"Event {event.seq} · {event.kind}  (esc to close)", classes="title")
            yield Static(self.head(), id="event-head")
            with VerticalScroll(id="event-data", can_focus=True):
                yield Static(JSON.from_data(event.data, indent=2, sort_keys=True))

    def head(self) -> Table:
        event = self.event
        local = event.ts.astimezone(self.now.tzinfo)
        table = Table(show_header=False, box=None, padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        table.add_row("kind", Text(event.kind, style="bold #8be9fd"))
        table.add_row("seq", str(event.seq))
        table.add_row(
            "time", f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {local.tzname() or ''}"
        )
        table.add_row(
            "session",
            str(self.session_n) if self.session_n else Text("none (an event of the run)", style="dim"),
        )
        return table

    def on_mount(self) -> None:
        self.query_one("#event-data").focus()

    def action_close(self) -> None:
        self.dismiss(None)
