"""The Checkpoints tab: the checkpoint tree (rewinds and forks are branches), and for the selected
checkpoint its handoff, its verdicts and its diff; resume, rewind or fork from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from longrun.app.actions import allowed_actions, ask_fork, ask_resume_from, ask_rewind
from longrun.app.format import clock_time, usd, verdict_text
from longrun.app.messages import Loaded
from longrun.app.widgets.pane import Pane
from longrun.scheduler import control
from longrun.scheduler.spec.keys import RATCHET
from longrun.store import board, runs
from longrun.store.errors import LongrunError
from longrun.store.runs import CheckpointView, RunView, VerdictView


@dataclass(frozen=True)
class Fork:
    run_id: str
    name: str
    checkpoint_id: int


@dataclass(frozen=True)
class CheckpointTree:
    run: RunView
    checkpoints: list[CheckpointView]
    sessions: dict[int, int]
    """Session id → its number in the run."""
    forks: list[Fork]


@dataclass(frozen=True)
class Detail:
    checkpoint: CheckpointView
    verdicts: list[VerdictView]
    diff: str
    cut: bool
    diff_error: str | None = None


class CheckpointTreeWidget(Tree[int]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="tree_down"),
        Binding("k", "cursor_up", "Up", show=False, id="tree_up"),
    ]


class CheckpointsPane(Pane):
    FOCUS = "#checkpoint-tree"
    BINDINGS = [
        Binding(
            "R", "resume_here", "Resume here", tooltip="A session now, from this checkpoint", id="resume_here"
        ),
        Binding(
            "w", "rewind_here", "Rewind", tooltip="Move the run back to this checkpoint", id="rewind_here"
        ),
        Binding("f", "fork_here", "Fork", tooltip="A new run from this checkpoint", id="fork_here"),
    ]

    def __init__(self, run_id: str, **kwargs: Any) -> None:
        super().__init__(run_id, **kwargs)
        self.tree_data: CheckpointTree | None = None
        self.selected: int | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            tree = CheckpointTreeWidget("checkpoints", id="checkpoint-tree")
            tree.show_root = False
            tree.guide_depth = 2
            yield tree
            with VerticalScroll(id="checkpoint-detail", can_focus=True):
                yield Static(Text("Select a checkpoint.", style="dim"), id="checkpoint-info")

    def read(self) -> CheckpointTree:
        store = self.app.store
        run = runs.get_run(store, self.run_id)
        forks = [
            Fork(e.data["run_id"], _name_of(store, e.data["run_id"]), e.data["checkpoint_id"])
            for e in board.events_of_kinds(store, run.id, ["fork_made"])
        ]
        return CheckpointTree(
            run,
            runs.list_checkpoints(store, run.id),
            {s.id: s.n for s in runs.list_sessions(store, run.id)},
            forks,
        )

    def show(self, data: CheckpointTree) -> None:
        self.tree_data = data
        tree = self.query_one(CheckpointTreeWidget)
        keep = self.selected or data.run.head_checkpoint_id
        tree.clear()
        children: dict[int | None, list[CheckpointView]] = {}
        for cp in data.checkpoints:
            children.setdefault(cp.parent_id, []).append(cp)
        forks: dict[int, list[Fork]] = {}
        for fork in data.forks:
            forks.setdefault(fork.checkpoint_id, []).append(fork)
        nodes: dict[int, TreeNode[int]] = {}

        def add(parent: TreeNode[int], cp: CheckpointView) -> None:
            # A line of history goes down the page; a second child (a rewind's new line) branches.
            kids = children.get(cp.id, [])
            node = parent.add(self._label(cp, data), data=cp.id, expand=True, allow_expand=False)
            nodes[cp.id] = node
            for fork in forks.get(cp.id, []):
                label = Text(f"↳ fork → {fork.name} ", style="#bd93f9")
                label.append(fork.run_id, style="dim")
                parent.add_leaf(label, data=-1)
            if not kids:
                return
            *branches, main = kids
            for branch in branches:
                sub = parent.add(Text(f"↳ branch from #{cp.id}", style="#ffb86c"), data=cp.id, expand=True)
                add(sub, branch)
            add(parent, main)

        for root in children.get(None, []):
            add(tree.root, root)
        tree.root.expand()
        if keep in nodes:
            # The tree lays its lines out when they are first asked for; before that a node has
            # no line, and moving to it put the cursor (and the selection) on the first checkpoint.
            tree.last_line  # noqa: B018
            tree.move_cursor(nodes[keep], animate=False)
            self.select(keep)

    def _label(self, cp: CheckpointView, data: CheckpointTree) -> Text:
        head = cp.id == data.run.head_checkpoint_id
        label = Text(f"#{cp.id} ", style="bold" if head else "")
        session = data.sessions.get(cp.session_id or -1)
        label.append(f"s{session} " if session else "   ", style="dim")
        label.append(cp.reason)
        judged = {f: s for f, s in cp.features.items() if f != RATCHET}
        passed = sum(1 for s in judged.values() if s == "pass")
        if judged:
            label.append(f" {passed}/{len(judged)}✓", style="#50fa7b" if passed == len(judged) else "")
        if head:
            label.append(" ◀ head", style="bold #8be9fd")
        return label

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[int]) -> None:
        if event.node.data is not None and event.node.data > 0:
            self.select(event.node.data)

    def select(self, checkpoint_id: int) -> None:
        self.selected = checkpoint_id
        self.run_worker(
            lambda: self._read_detail(checkpoint_id),
            thread=True,
            exclusive=True,
            exit_on_error=False,
            group="checkpoint-detail",
        )

    def _read_detail(self, checkpoint_id: int) -> None:
        store = self.app.store
        try:
            cp = runs.get_checkpoint(store, checkpoint_id, self.run_id)
            verdicts = runs.verdicts_at(store, [checkpoint_id])[checkpoint_id]
        except LongrunError as exc:
            self.post_message(Loaded("checkpoint-detail", None, exc.message))
            return
        try:
            diff, cut = control.checkpoint_diff(store, self.run_id, checkpoint_id)
            detail = Detail(cp, verdicts, diff, cut)
        except LongrunError as exc:
            detail = Detail(cp, verdicts, "", False, exc.message)
        self.post_message(Loaded("checkpoint-detail", detail))

    def on_loaded(self, message: Loaded) -> None:
        if message.what != "checkpoint-detail":
            super().on_loaded(message)
            return
        message.stop()
        info = self.query_one("#checkpoint-info", Static)
        if message.error:
            info.update(Text(message.error, style="red"))
            return
        d: Detail = message.data
        if d.checkpoint.id != self.selected:
            return
        info.update(self._detail(d))

    def _detail(self, d: Detail) -> Group:
        cp = d.checkpoint
        now = self.app.clock()
        head = Text(f"Checkpoint #{cp.id}", style="bold")
        head.append(
            f"  {cp.reason} · {clock_time(cp.created_at, now)} · commit {cp.commit[:12]}", style="dim"
        )
        head.append(f"\nrun total then: {usd(cp.spent_usd)}, {cp.tokens:,} tokens\n")
        parts: list[Any] = [head]
        if cp.handoff:
            text = Text("Handoff\n", style="bold #8be9fd")
            for key, value in cp.handoff.items():
                if isinstance(value, list):
                    value = "; ".join(str(v) for v in value)
                text.append(f"  {key.replace('_', ' ')}: ", style="bold")
                text.append(f"{value}\n")
            parts.append(text)
        verdicts = Text("Verdicts\n", style="bold #8be9fd")
        if not d.verdicts:
            verdicts.append("  not judged here\n", style="dim")
        for v in d.verdicts:
            verdicts.append(f"  {v.feature_id:<16} ")
            verdicts.append_text(verdict_text(v.status))
            verdicts.append(f"  ({v.judge})\n", style="dim")
        parts.append(verdicts)
        parts.append(Text("Diff against its parent", style="bold #8be9fd"))
        if d.diff_error:
            parts.append(Text(f"  {d.diff_error}", style="red"))
        elif not d.diff:
            parts.append(Text("  no change in the workspace", style="dim"))
        else:
            parts.append(Syntax(d.diff, "diff", theme="monokai", word_wrap=True, background_color="default"))
            if d.cut:
                parts.append(Text("… cut here (the diff is larger)", style="dim"))
        return Group(*parts)

    # --- actions from here ----------------------------------------------------------------------

    def _target(self) -> CheckpointView | None:
        if self.tree_data is None or self.selected is None:
            self.app.notify("Select a checkpoint first.", severity="warning")
            return None
        return next((c for c in self.tree_data.checkpoints if c.id == self.selected), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Resume here and Rewind show only when the run's state allows them."""
        needs = {"resume_here": "resume", "rewind_here": "rewind"}.get(action)
        if needs is None:
            return True
        row = self.app.rows.get(self.run_id)
        return row is not None and needs in allowed_actions(row)

    def action_resume_here(self) -> None:
        cp = self._target()
        if cp is not None and self.tree_data is not None:
            ask_resume_from(self.app, self.tree_data.run, cp)

    def action_rewind_here(self) -> None:
        cp = self._target()
        if cp is not None and self.tree_data is not None:
            ask_rewind(self.app, self.tree_data.run, cp)

    def action_fork_here(self) -> None:
        cp = self._target()
        if cp is not None and self.tree_data is not None:
            ask_fork(self.app, self.tree_data.run, cp)


def _name_of(store: Any, run_id: str) -> str:
    try:
        return runs.get_run(store, run_id).name
    except LongrunError:
        return "(gone)"
