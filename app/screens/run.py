"""The run screen: one run in tabs (Overview, Sessions, Checkpoints, Verdicts, Events, Timeline)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Header, TabbedContent, TabPane

from longrun.app.actions import RUN_BINDINGS, RunActions
from longrun.app.widgets.checkpoints import CheckpointsPane
from longrun.app.widgets.events import EventsPane
from longrun.app.widgets.footer import Footer
from longrun.app.widgets.overview import Overview, OverviewPane
from longrun.app.widgets.pane import Pane
from longrun.app.widgets.sessions import SessionsPane
from longrun.app.widgets.statusbar import StatusBar
from longrun.app.widgets.timeline import TimelinePane
from longrun.app.widgets.verdicts import VerdictsPane
from longrun.store.board import Changes, RunRow

if TYPE_CHECKING:
    from longrun.app.dashboard import LongrunApp

TABS = (
    ("overview", "Overview", OverviewPane),
    ("sessions", "Sessions", SessionsPane),
    ("checkpoints", "Checkpoints", CheckpointsPane),
    ("verdicts", "Verdicts", VerdictsPane),
    ("events", "Events", EventsPane),
    ("timeline", "Timeline", TimelinePane),
)


class RunScreen(RunActions, Screen[None]):
    app: LongrunApp
    BINDINGS = [
        *(
            Binding(str(i), f"tab('{key}')", label, show=False, tooltip=f"The {label} tab", id=f"tab_{key}")
            for i, (key, label, _) in enumerate(TABS, start=1)
        ),
        *RUN_BINDINGS,
    ]

    def __init__(self, run_id: str, overview: Overview | None = None, *, tab: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.stale: set[str] = set()
        self._overview = overview
        """The Overview tab's data when the app read it before opening the screen."""
        self._tab = tab
        """The tab to show once the screen is up (the Overview when None)."""

    @property
    def ready(self) -> bool:
        """The first tab shows the run (the benchmark and tests wait for this)."""
        pane = self.pane("overview")
        return pane is not None and pane.ready

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield StatusBar()
        with TabbedContent(initial="tab-overview", id="tabs"):
            for key, label, pane in TABS:
                # Only the first tab is built now; the others when first shown (opening stays fast).
                with TabPane(label, id=f"tab-{key}"):
                    if key == "overview":
                        yield pane(self.run_id, id=key)
        yield Footer()

    def on_mount(self) -> None:
        row = self.current_row()
        self.sub_title = f"run {row.name if row else self.run_id}"
        self.query_one(StatusBar).show(self.app)
        overview = self.query_one(OverviewPane)
        if self._overview is not None:
            overview.use(self._overview)
            self._overview = None
        else:
            overview.load()
        overview.take_focus()
        self.bindings_may_change()
        if self._tab:
            self.action_tab(self._tab)

    def current_row(self) -> RunRow | None:
        return self.app.rows.get(self.run_id)

    def pane(self, key: str) -> Pane | None:
        """A tab's pane, when it has been built."""
        found = self.query(f"#{key}").results(Pane)
        return next(iter(found), None)

    async def built(self, key: str) -> Pane:
        """A tab's pane, built now if it was not yet."""
        pane = self.pane(key)
        if pane is None:
            kind = next(cls for k, _, cls in TABS if k == key)
            pane = kind(self.run_id, id=key)
            await self.query_one(f"#tab-{key}", TabPane).mount(pane)
        return pane

    def active(self) -> str:
        return (self.query_one(TabbedContent).active or "tab-overview").removeprefix("tab-")

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        key = (event.pane.id or "").removeprefix("tab-")
        pane = await self.built(key)
        pane.take_focus()
        if not pane.ready or key in self.stale:
            self.stale.discard(key)
            pane.load()

    def action_tab(self, key: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{key}"

    def picked_checkpoint(self) -> tuple[int, bool] | None:
        """The checkpoint selected in the Checkpoints tab, and whether it is the run's head; None
        when that tab has not read its tree yet."""
        pane = self.pane("checkpoints")
        if not isinstance(pane, CheckpointsPane) or pane.tree_data is None or pane.selected is None:
            return None
        return pane.selected, pane.selected == pane.tree_data.run.head_checkpoint_id

    async def show_in_events(self, seq: int | None, at: Any) -> None:
        """The Events tab, at one event (by its seq) or at a moment."""
        events = await self.built("events")
        assert isinstance(events, EventsPane)
        self.action_tab("events")
        if seq is not None:
            events.jump_to_seq(seq)
        else:
            events.jump_to(at)

    def store_changed(self, changes: Changes, first: bool) -> None:
        self.query_one(StatusBar).show(self.app)
        row = self.current_row()
        if row is not None:
            self.sub_title = f"run {row.name}"
        self.bindings_may_change()
        if not any(r.id == self.run_id for r in changes.rows) or changes.everything:
            return
        active = self.active()
        for key, _, _ in TABS:
            pane = self.pane(key)
            if pane is None:
                continue
            if key != active:
                self.stale.add(key)
            elif isinstance(pane, EventsPane):
                pane.refresh_live()
            else:
                pane.load()
