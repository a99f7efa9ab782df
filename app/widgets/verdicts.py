"""The Verdicts tab: features × checkpoints, pass/fail/error at a glance, and the selected cell's
evidence (the check's output, the judge's rationale)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from longrun.app.format import VERDICT_STYLES, pretty
from longrun.app.widgets.pane import Pane
from longrun.scheduler import control

MARKS = {"pass": "✓", "fail": "✗", "error": "!"}


class VerdictTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="verdicts_down"),
        Binding("k", "cursor_up", "Up", show=False, id="verdicts_up"),
        Binding("h", "cursor_left", "Left", show=False, id="verdicts_left"),
        Binding("l", "cursor_right", "Right", show=False, id="verdicts_right"),
    ]


class VerdictsPane(Pane):
    FOCUS = "#verdict-table"

    def __init__(self, run_id: str, **kwargs: Any) -> None:
        super().__init__(run_id, **kwargs)
        self.matrix: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield VerdictTable(id="verdict-table", cursor_type="cell")
        with VerticalScroll(id="verdict-evidence", can_focus=True):
            yield Static(Text("Move to a cell to see its evidence.", style="dim"), id="evidence")

    def read(self) -> dict[str, Any]:
        return control.verdict_matrix(self.app.store, self.run_id)

    def show(self, data: dict[str, Any]) -> None:
        self.matrix = data
        table = self.query_one(VerdictTable)
        at = table.cursor_coordinate
        table.clear(columns=True)
        table.add_column("FEATURE", key="feature")
        for cp in data["checkpoints"]:
            session = f" s{cp['session']}" if cp["session"] else ""
            table.add_column(f"#{cp['id']}{session}", key=str(cp["id"]))
        for feature in data["features"]:
            cells = {v["checkpoint_id"]: v["status"] for v in feature["verdicts"]}
            name = Text(feature["id"], style="bold" if feature["in_done_condition"] else "dim")
            row = [name]
            for cp in data["checkpoints"]:
                status = cells.get(cp["id"])
                row.append(
                    Text(f" {MARKS.get(status, status)} ", style=VERDICT_STYLES.get(status, ""))
                    if status
                    else Text(" · ", style="dim")
                )
            table.add_row(*row, key=feature["id"])
        if not data["features"]:
            self.query_one("#evidence", Static).update(Text("Nothing judged yet.", style="dim"))
            return
        if at.column == 0 and data["checkpoints"]:
            at = at._replace(column=len(data["checkpoints"]))
        table.move_cursor(row=min(at.row, table.row_count - 1), column=at.column, animate=False)
        self.show_cell()

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self.show_cell()

    def show_cell(self) -> None:
        table = self.query_one(VerdictTable)
        if not self.matrix or not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate)
        feature = next((f for f in self.matrix["features"] if f["id"] == key.row_key.value), None)
        evidence = self.query_one("#evidence", Static)
        if feature is None:
            return
        if key.column_key.value == "feature":
            text = Text(f"{feature['id']}: ", style="bold")
            text.append(f"latest {feature['latest']}; history {' → '.join(feature['history']) or 'none'}")
            evidence.update(text)
            return
        verdict = next(
            (v for v in feature["verdicts"] if str(v["checkpoint_id"]) == key.column_key.value), None
        )
        if verdict is None:
            evidence.update(Text(f"{feature['id']} was not judged at #{key.column_key.value}.", style="dim"))
            return
        evidence.update(evidence_text(feature["id"], verdict))


def evidence_text(feature: str, verdict: dict[str, Any]) -> Text:
    """A verdict's evidence for a person: the rationale first, then the command output's tail."""
    out = Text(f"{feature} at #{verdict['checkpoint_id']}: ", style="bold")
    out.append(verdict["status"], style=VERDICT_STYLES.get(verdict["status"], ""))
    out.append(f"  judged by {verdict['judge']} at {verdict['judged_at']}\n", style="dim")
    ev = dict(verdict["evidence"] or {})
    for key in ("rationale", "summary", "error"):
        if ev.get(key):
            out.append(f"{key}: ", style="bold")
            out.append(f"{ev.pop(key)}\n")
    for key in ("command", "exit_code", "duration_s", "confidence", "model"):
        if key in ev:
            out.append(f"{key}: ", style="bold")
            out.append(f"{ev.pop(key)}\n")
    judged = ev.pop("judged", None)
    if isinstance(judged, dict) and judged.get("commit"):
        out.append("judged: ", style="bold")
        tree = f" (tree {str(judged['tree'])[:10]})" if judged.get("tree") else ""
        where = judged.get("where", "a tree of its own")
        out.append(f"commit {str(judged['commit'])[:10]}{tree}, in {where}\n")
        for key in ("restored", "links_left_out"):
            if judged.get(key):
                out.append(f"  {key.replace('_', ' ')}: {', '.join(map(str, judged[key]))}\n", style="dim")
    changed = ev.pop("harness_changed", None)
    if isinstance(changed, dict) and changed.get("diff"):
        out.append("check harness, pinned → now:\n", style="bold")
        out.append(str(changed["diff"]).rstrip()[-4000:] + "\n")
    for key in ("output", "output_tail", "stdout", "stderr"):
        if ev.get(key):
            out.append(f"{key}:\n", style="bold")
            out.append(str(ev.pop(key)).rstrip()[-4000:] + "\n")
    if ev:
        out.append(pretty(ev), style="dim")
    return out
