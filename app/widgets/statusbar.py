"""The line under the header on every screen: is a supervisor running, and what waits for you."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from longrun.app.format import ago, clock_time

if TYPE_CHECKING:
    from longrun.app.dashboard import LongrunApp


class Badge(Static):
    """How many approvals wait; a click opens the inbox."""

    def on_click(self) -> None:
        self.app.action_inbox()  # type: ignore[attr-defined]


class StatusBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static(id="supervisor")
        yield Badge(id="badge")

    def show(self, app: LongrunApp) -> None:
        self.query_one("#supervisor", Static).update(supervisor_line(app))
        badge = self.query_one("#badge", Badge)
        count = len(app.pending)
        badge.set_class(count > 0, "waiting")
        badge.update(f" ⚑ {count} waiting on you · i " if count else " nothing waits on you ")


def supervisor_line(app: LongrunApp) -> Text:
    now = app.clock()
    if app.poll_error:
        return Text(f"✗ cannot read the store: {app.poll_error}", style="bold red")
    if not app.polled_once:
        return Text("reading the store…", style="dim")
    sup = app.supervisor
    if sup is None or not sup.alive(now):
        last = f" (last seen {ago(sup.heartbeat_at, now)})" if sup else ""
        out = Text("○ supervisor not running", style="bold #ff5555")
        out.append(f"{last}: no session starts · `longrun daemon` starts one", style="")
        return out
    out = Text("● supervisor running", style="bold #50fa7b")
    if sup.since:
        out.append(f" since {clock_time(sup.since, now)}")
    if sup.pid:
        out.append(f" (pid {sup.pid})", style="dim")
    limit = f" of {sup.max_concurrent}" if sup.max_concurrent else ""
    out.append(f" · {app.live_sessions}{limit} sessions running")
    return out
