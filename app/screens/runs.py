"""The runs screen (home): one row per run, what needs a person first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from longrun.app.actions import RUN_BINDINGS, RunActions
from longrun.app.format import (
    JUDGING_STYLE,
    features_cell,
    run_state_line,
    short_path,
    span,
    spend_cell,
    state_text,
    until,
)
from longrun.app.widgets.footer import Footer
from longrun.app.widgets.statusbar import StatusBar
from longrun.store.board import Changes, RunRow

if TYPE_CHECKING:
    from longrun.app.dashboard import LongrunApp

COLUMNS = (
    ("name", "RUN"),
    ("state", "STATE"),
    ("features", "FEATURES"),
    ("spend", "SPEND"),
    ("session", "SESSION"),
    ("flags", "NEEDS YOU"),
)


class RunsTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="runs_down"),
        Binding("k", "cursor_up", "Up", show=False, id="runs_up"),
    ]


class RunsScreen(RunActions, Screen[None]):
    app: LongrunApp
    BINDINGS = [
        Binding(
            "enter", "open", "Open", tooltip="The run's screen: overview, sessions, checkpoints…", id="open"
        ),
        *RUN_BINDINGS,
    ]

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield StatusBar()
        if self.app.banner:
            yield Static(self.app.banner, id="banner")
        table = RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static(id="run-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"runs · store {short_path(str(self.app.store.home))}"
        self.query_one(RunsTable).loading = not self.app.polled_once

    def current_row(self) -> RunRow | None:
        table = self.query_one(RunsTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.app.rows.get(key or "")

    def store_changed(self, changes: Changes, first: bool) -> None:
        self.query_one(StatusBar).show(self.app)
        table = self.query_one(RunsTable)
        table.loading = False
        rows = self.app.ordered_rows()
        keep = self.current_row()
        order = [r.id for r in rows]
        shown = [k.value for k in table.rows]
        if order == shown:
            for row in changes.rows:
                for key, value in zip((k for k, _ in COLUMNS), self.cells(row), strict=True):
                    table.update_cell(row.id, key, value)
            self.show_detail()
            self.bindings_may_change()
            return
        table.clear()
        for row in rows:
            table.add_row(*self.cells(row), key=row.id)
        if keep is not None and keep.id in self.app.rows:
            table.move_cursor(row=order.index(keep.id), animate=False)
        self.show_detail()
        self.bindings_may_change()

    def cells(self, row: RunRow) -> list[Text]:
        now = self.app.clock()
        session = Text("—", style="dim")
        judging = self.app.judging.get(row.id)
        if row.session is not None:
            session = Text(f"#{row.session.n} ", style="bold")
            session.append(f"{span(row.session.deadline_at - now)} left")
        elif judging is not None:
            session = Text(f"#{judging} ", style="bold")
            session.append("judging", style=JUDGING_STYLE)
        elif row.next_session_at is not None and row.state == "scheduled":
            session = Text(f"next {until(row.next_session_at, now)}")
        elif row.state == "scheduled":
            session = Text("next: due", style="dim")
        flags = Text()
        if row.pending:
            flags.append(f"⚑ {row.pending} ", style="bold #ffb86c")
        if row.open_breakers:
            flags.append(f"⚡ {len(row.open_breakers)} ", style="bold #ff5555")
        if not flags:
            flags = Text("—", style="dim")
        name = Text(row.name, style="bold")
        if row.parent_run_id:
            name.append(" ↳", style="dim")
        return [
            name,
            state_text(row.state),
            features_cell(row.features_passed, row.features_total),
            spend_cell(row.spent_usd, row.budget_usd),
            session,
            flags,
        ]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        self.bindings_may_change()

    def show_detail(self) -> None:
        row = self.current_row()
        detail = self.query_one("#run-detail", Static)
        if row is None:
            detail.update(
                Text("No runs yet. Press n to create one from a spec file, or run `longrun-ui --demo`.")
                if self.app.polled_once
                else ""
            )
            return
        out = Text(f"{row.name} ", style="bold")
        out.append(f"({row.id}) ", style="dim")
        out.append_text(run_state_line(row.state, row.state_reason, self.app.judging.get(row.id)))
        if row.next_reason and row.state == "scheduled":
            out.append(f"\nnext session: {row.next_reason}", style="dim")
        if row.pending:
            out.append(f"\n⚑ {row.pending} waiting on you (i)", style="#ffb86c")
        for name in row.open_breakers:
            out.append(f"\n⚡ breaker {name} is open (c resets it)", style="#ff5555")
        detail.update(out)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.open_run(event.row_key.value)

    def action_open(self) -> None:
        row = self.current_row()
        if row is not None:
            self.app.open_run(row.id)
