"""The Overview tab: goal, spec, state and why, budget and breakers, the latest handoff, and what
the next session will be told."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from longrun.app.format import bar, run_state_line, short_path, tokens, usd
from longrun.app.screens.modals import TextScreen
from longrun.app.widgets.pane import Pane
from longrun.scheduler import control
from longrun.scheduler.session.context import next_context
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.runs import CheckpointView, RunView


@dataclass(frozen=True)
class Overview:
    run: RunView
    budget: dict[str, Any]
    handoff: CheckpointView | None
    context: str
    sessions: int
    judging: int | None = None
    """The number of the session that has ended and that the judge is settling, if one is."""
    sandbox: dict[str, Any] | None = None
    """What the latest session's `sandbox` event said confined it (None before any session)."""


def read_overview(store: Store, run_id: str, now: datetime) -> Overview:
    """What the Overview tab shows (no widgets: the app reads it before it opens a run screen)."""
    run = runs.get_run(store, run_id)
    handoff = None
    if run.head_checkpoint_id:
        for cp in runs.checkpoint_ancestors(store, run.head_checkpoint_id, 50):
            if cp.handoff:
                handoff = cp
                break
    return Overview(
        run=run,
        budget=control.budget_document(store, run.id, now=now),
        handoff=handoff,
        context=next_context(store, run),
        sessions=runs.session_count(store, run.id),
        judging=next((s.n for s in runs.unsettled_sessions(store) if s.run_id == run.id), None),
        sandbox=sandboxed.data if (sandboxed := log.latest_event(store, run.id, "sandbox")) else None,
    )


class OverviewPane(Pane):
    FOCUS = "#overview-scroll"
    BINDINGS = [
        Binding(
            "v",
            "context",
            "Next context",
            tooltip="What the next session will be told, in full",
            id="context",
        ),
    ]

    def __init__(self, run_id: str, **kwargs: Any) -> None:
        super().__init__(run_id, **kwargs)
        self.next_text = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll(can_focus=True, id="overview-scroll"):
            yield Static(id="overview-head")
            yield Static(id="overview-body")

    def read(self) -> Overview:
        return read_overview(self.app.store, self.run_id, self.app.clock())

    def show(self, data: Overview) -> None:
        self.next_text = data.context
        run, spec = data.run, data.run.spec
        head = Text()
        head.append(f"{run.name}", style="bold")
        head.append(f"  {run.id}", style="dim")
        if run.parent_run_id:
            head.append(f"  forked from {run.parent_run_id}", style="dim")
        head.append("\n")
        head.append_text(run_state_line(run.state, run.state_reason, data.judging))
        head.append("\n\n")
        head.append("Goal  ", style="bold")
        head.append(" ".join(run.goal.split()))
        self.query_one("#overview-head", Static).update(head)
        self.query_one("#overview-body", Static).update(
            Group(
                self._spec(run, spec, data.sessions, data.sandbox),
                self._budget(data.budget),
                self._handoff(data),
                self._next_session(data),
            )
        )

    def _spec(
        self, run: RunView, spec: dict[str, Any], sessions: int, sandbox: dict[str, Any] | None
    ) -> Table:
        table = _section("Spec")
        worker, session = spec.get("worker", {}), spec.get("session", {})
        table.add_row("workspace", f"{short_path(run.workspace)} (branch {run.branch})")
        table.add_row("worker", worker_line(worker))
        table.add_row(
            "sessions",
            f"{session.get('time_box', '?')} each, wrap-up {session.get('wrap_up', '?')}; {sessions} so far",
        )
        schedule = spec.get("schedule") or {}
        if schedule:
            table.add_row(
                "schedule", ", ".join(f"{k} {v}" for k, v in schedule.items() if v not in (None, [], {}))
            )
        table.add_row("sandbox", confinement(spec.get("sandbox") or {}, sandbox, sessions))
        features = spec.get("features", [])
        table.add_row("done when", f"{len(features)} features pass: " + ", ".join(f["id"] for f in features))
        return table

    def _budget(self, doc: dict[str, Any]) -> Table:
        table = _section("Budget")
        for cap in doc["caps"]:
            fraction = cap["fraction"] or 0.0
            money = cap["cap"].endswith("usd")
            show = usd if money else (lambda v, _=None: tokens(int(v)))
            line = bar(fraction, 12, warn=doc["warn_at"])
            line.append(f" {show(cap['spent'])} of {show(cap['limit'])} · {show(cap['left'])} left")
            table.add_row(cap["cap"], line)
        table.add_row("today", f"{usd(doc['today_usd'])} · last hour {usd(doc['last_hour_usd'])}")
        t = doc["tokens"]
        table.add_row(
            "tokens",
            f"in {tokens(t['input_tokens'])} · out {tokens(t['output_tokens'])} · "
            f"cache write {tokens(t['cache_write_tokens'])} · cache read {tokens(t['cache_read_tokens'])}",
        )
        for b in doc["breakers"]:
            state = Text(
                b["state"], style={"open": "bold #ff5555", "half_open": "#ffb86c"}.get(b["state"], "dim")
            )
            state.append(f" · limit {b['limit']}")
            if b["reason"] and b["state"] != "closed":
                state.append(f" · {b['reason']}")
            table.add_row(f"⚡ {b['name']}", state)
        return table

    def _handoff(self, data: Overview) -> Table:
        table = _section("Latest handoff")
        cp = data.handoff
        if cp is None or not cp.handoff:
            table.add_row("", Text("no session has handed off yet", style="dim"))
            return table
        table.add_row("from", f"checkpoint {cp.id} · {cp.reason} · {cp.commit[:10]}")
        for key, value in cp.handoff.items():
            if isinstance(value, list):
                value = "\n".join(f"• {v}" for v in value)
            table.add_row(str(key).replace("_", " "), str(value))
        return table

    def _next_session(self, data: Overview) -> Table:
        table = _section("Next session is told")
        lines = data.context.splitlines()
        preview = "\n".join(lines[:12])
        more = f"\n… {len(lines) - 12} more lines: press v to read it all" if len(lines) > 12 else ""
        table.add_row("", Text(preview + more))
        return table

    def action_context(self) -> None:
        if self.next_text:
            self.app.push_screen(TextScreen("What the next session will be told", self.next_text))


def worker_line(worker: dict[str, Any]) -> str:
    """The worker in a line: its backend and model, and for a command what it runs."""
    backend, model = worker.get("backend", "anthropic"), worker.get("model", "?")
    if backend != "command":
        return f"{backend} · {model}"
    return f"command · {command_words(worker.get('command'))} · {model}"


COMMAND_CHARS = 40


def command_words(command: Any) -> str:
    """A command as the Overview shows it: the program and its first argument, paths by their
    names (`python agent.py`), or the start of a shell line."""
    if isinstance(command, list) and command:
        words = [Path(str(w)).name if "/" in str(w) else str(w) for w in command[:2]]
        shown = " ".join(words) + (" …" if len(command) > 2 else "")
    else:
        shown = " ".join(str(command or "").split())
    return shown if len(shown) <= COMMAND_CHARS else shown[: COMMAND_CHARS - 1] + "…"


def _section(title: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold #8be9fd",
        show_header=False,
        box=None,
        padding=(0, 1),
        expand=False,
    )
    table.add_column(style="bold", width=24, no_wrap=True)
    table.add_column(overflow="fold")
    return table


def confinement(spec: dict[str, Any], said: dict[str, Any] | None, sessions: int) -> Text:
    """The sandbox in a line: what the latest session ran in, or (before one ran) what the spec
    asks for; unconfined is said plainly, in red."""
    if said is not None and not said.get("confined"):
        return Text(f"UNCONFINED: {said.get('why', 'no sandbox')}", style="bold #ff5555")
    if said is None and sessions:
        return Text("UNCONFINED: its sessions ran with no sandbox recorded", style="bold #ff5555")
    if said is None and spec.get("mode") == "off":
        return Text('UNCONFINED: [sandbox] mode = "off"', style="bold #ff5555")
    network = (said or spec).get("network", "off")
    line = Text()
    line.append("confined" if said is not None else "asked for", style="#50fa7b" if said else "")
    line.append(f" · network {network}")
    if said is not None:
        line.append(f" · {said.get('limits', '')}", style="dim")
    else:
        line.append(
            f" · {spec.get('memory_mb')} MiB, {spec.get('processes')} processes, "
            f"{spec.get('cpu_minutes')} CPU minutes",
            style="dim",
        )
    return line
