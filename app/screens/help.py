"""The help screen: every key of every screen, read from the bindings themselves."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from longrun.app.screens.modals import MODAL_CSS

NAVIGATION = [
    ("↑ ↓  j k", "move in a list or table"),
    ("← →  h l", "move between verdict cells; between tabs when the tab bar has focus"),
    ("tab  shift+tab", "move focus between parts of a screen"),
    ("1 … 6", "a run's tabs: Overview, Sessions, Checkpoints, Verdicts, Events, Timeline"),
    ("ctrl+p", "command palette: runs, approvals and actions by name"),
    ("ctrl+q", "quit from anywhere"),
]


def _sections() -> list[tuple[str, list[BindingType]]]:
    from longrun.app.dashboard import LongrunApp
    from longrun.app.screens.approvals import InboxScreen
    from longrun.app.screens.modals import DecideScreen
    from longrun.app.screens.run import TABS, RunScreen
    from longrun.app.screens.runs import RunsScreen
    from longrun.app.widgets.checkpoints import CheckpointsPane
    from longrun.app.widgets.events import OPEN_EVENT, EventsPane
    from longrun.app.widgets.overview import OverviewPane
    from longrun.app.widgets.timeline import TimelinePane

    TAB_IDS = {f"tab_{key}" for key, _, _ in TABS}  # 1 … 6, listed under navigation
    return [
        ("Everywhere", list(LongrunApp.BINDINGS)),
        ("Runs screen", list(RunsScreen.BINDINGS)),
        ("Run screen", [b for b in RunScreen.BINDINGS if isinstance(b, Binding) and b.id not in TAB_IDS]),
        ("Overview tab", list(OverviewPane.BINDINGS)),
        ("Checkpoints tab", list(CheckpointsPane.BINDINGS)),
        ("Events tab", [OPEN_EVENT, *(b for b in EventsPane.BINDINGS if isinstance(b, Binding))]),
        ("Timeline tab", list(TimelinePane.BINDINGS)),
        ("Approvals inbox", list(InboxScreen.BINDINGS)),
        ("Deciding", list(DecideScreen.BINDINGS)),
    ]


KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "escape": "esc",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
}


def key_label(keys: str) -> str:
    return "  ".join(KEY_NAMES.get(k, k) for k in keys.split(","))


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = (
        MODAL_CSS.format(name="HelpScreen")
        + """
    HelpScreen > VerticalScroll { width: 92; max-width: 98%; height: 90%; border: thick $accent;
        background: $surface; padding: 0 2; }
    """
    )
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help_close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.table())

    def table(self) -> Table:
        table = Table(show_header=False, box=None, padding=(0, 2), expand=True)
        table.add_column(width=16, style="bold #8be9fd", no_wrap=True)
        table.add_column()
        table.add_row(Text("longrun keys", style="bold"), Text("esc, q or ? closes this", style="dim"))
        table.add_row(
            "",
            Text(
                "Every key is here; the footer shows those the run's state allows, as many as fit "
                "(Approvals, Help and Back always).",
                style="dim",
            ),
        )
        table.add_row("", "")
        table.add_row(Text("Moving", style="bold #ffb86c"), "")
        for keys, what in NAVIGATION:
            table.add_row(keys, what)
        for title, bindings in _sections():
            table.add_row("", "")
            table.add_row(Text(title, style="bold #ffb86c"), "")
            for b in bindings:
                if isinstance(b, Binding):
                    table.add_row(
                        key_label(b.key), f"{b.description}: {b.tooltip}" if b.tooltip else b.description
                    )
        return table

    def action_close(self) -> None:
        self.dismiss(None)
