"""The actions on a run, shared by the runs screen (the highlighted run) and the run screen.

Each goes through `scheduler.control` in a worker; the ones that cannot be undone ask first and
say exactly what will happen. Only the actions the run's state allows are offered (in the footer
and in the command palette): `allowed_actions` says which, by the rules `scheduler.control`
itself applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.binding import Binding

from longrun.app.format import usd
from longrun.app.screens.modals import AskScreen, ConfirmScreen
from longrun.scheduler import control
from longrun.store import runs
from longrun.store.board import RunRow
from longrun.store.errors import LongrunError
from longrun.store.models import RunState
from longrun.store.runs import CheckpointView, RunView

if TYPE_CHECKING:
    from longrun.app.dashboard import LongrunApp

RUN_BINDINGS = [
    Binding("s", "run_action('start')", "Start", tooltip="Hand a draft run to the supervisor", id="start"),
    Binding(
        "p", "run_action('pause')", "Pause", tooltip="No new session; a running one wraps up", id="pause"
    ),
    Binding(
        "x", "run_action('stop')", "Stop", tooltip="End a running session now, with a checkpoint", id="stop"
    ),
    Binding("r", "run_action('resume')", "Resume", tooltip="A session now, from the head", id="resume"),
    # Kept out of the footer (it cuts what does not fit, "? Help" first): in `?` and the palette.
    Binding(
        "b", "run_action('budget')", "Budget", tooltip="Raise the run's USD cap", id="budget", show=False
    ),
    Binding(
        "c",
        "run_action('breaker')",
        "Breaker",
        tooltip="Reset an open breaker (half-open)",
        id="breaker",
        show=False,
    ),
    Binding(
        "J", "run_action('judge')", "Judge", tooltip="Judge the head checkpoint now", id="judge", show=False
    ),
    Binding("e", "run_action('report')", "Report", tooltip="The run's audit report (HTML)", id="report"),
]


ALWAYS = frozenset({"budget", "judge", "report", "fork"})
"""Actions any run allows, whatever its state."""


def allowed_actions(row: RunRow) -> frozenset[str]:
    """The actions on `row` that its state allows now; the others would only be refused."""
    can = set(ALWAYS)
    if row.state == RunState.draft:
        can.add("start")
    if row.state in control.ACTIVE_NOW:
        can |= {"pause", "stop"}
    if row.state in control.RESUMABLE:
        can.add("resume")
    if row.open_breakers:
        can.add("breaker")
    if row.session is None:
        can.add("rewind")  # a live session has to be paused or stopped first
    return frozenset(can)


class RunActions:
    """Mixin for a screen with a current run: `current_row()` says which. Its run-action keys
    show only when the run's state allows them (`check_action`); call `bindings_may_change()`
    when the current run, or what is known of it, changes."""

    app: LongrunApp
    _offered: frozenset[str] | None = None

    def current_row(self) -> RunRow | None:
        raise NotImplementedError

    def allowed(self) -> frozenset[str]:
        """What the current run allows now (nothing when there is no current run)."""
        row = self.current_row()
        return allowed_actions(row) if row is not None else frozenset()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_action" and parameters:
            return str(parameters[0]) in self.allowed()
        return True

    def bindings_may_change(self) -> None:
        """Redraw the footer when what the current run allows has changed (not on every poll)."""
        now = self.allowed()
        if now != self._offered:
            self._offered = now
            self.refresh_bindings()

    if TYPE_CHECKING:

        def refresh_bindings(self) -> None: ...  # the Screen's

    def action_run_action(self, name: str) -> None:
        self.act_on_run(name)

    def act_on_run(self, name: str) -> None:
        row = self.current_row()
        if row is None:
            self.app.notify("No run selected.", severity="warning")
            return
        app, store, who = self.app, self.app.store, self.app.who
        if name == "start":
            app.act(f"Started {row.name}", control.start, store, row.id, by=who)
        elif name == "pause":
            app.act(f"Paused {row.name}", control.pause, store, row.id, by=who)
        elif name == "stop":
            body = (
                f"Stop run {row.name} ({row.id}) now.\n\n"
                + (
                    f"Session {row.session.n} is ended at once, with a checkpoint of its work. "
                    if row.session
                    else "No session is running. "
                )
                + "No new session starts until you resume the run."
            )
            self._confirm(
                "Stop the run?",
                body,
                "Stop",
                lambda: app.act(f"Stopped {row.name}", control.stop, store, row.id, by=who),
            )
        elif name == "resume":
            app.act(f"Resumed {row.name}", control.resume_now, store, row.id, by=who)
        elif name == "budget":
            self._raise_budget(row)
        elif name == "breaker":
            self._reset_breaker(row)
        elif name == "report":
            app.notify(f"Writing the report of {row.name}…", timeout=4)
            app.make_report(row.id, row.name)
        elif name == "judge":
            app.notify(f"Judging {row.name}'s head checkpoint…", timeout=4)
            app.act(f"Judged {row.name}", _judge, store, row.id, who)

    def _confirm(self, title: str, body: str, yes: str, then: Any) -> None:
        confirm(self.app, title, body, yes, then)

    def checkpoint_action(self, verb: str, checkpoint_id: int | None) -> None:
        """Rewind to or fork from a checkpoint of the current run (its head when None), asking
        first as the Checkpoints tab does; the run and the checkpoint are read in a thread."""
        row = self.current_row()
        if row is None:
            self.app.notify("No run selected.", severity="warning")
            return
        app = self.app

        def read() -> None:
            try:
                run = runs.get_run(app.store, row.id)
                cp = runs.get_checkpoint(app.store, checkpoint_id or run.head_checkpoint_id or 0, run.id)
            except LongrunError as exc:
                app.call_from_thread(app.notify, exc.message, severity="error")
                return
            ask = ask_rewind if verb == "rewind" else ask_fork
            app.call_from_thread(ask, app, run, cp)

        app.run_worker(read, thread=True, exit_on_error=False, group="checkpoint-action")

    def _raise_budget(self, row: RunRow) -> None:
        app = self.app
        current = row.budget_usd or 0.0

        def check(value: str) -> str | None:
            try:
                number = float(value.removeprefix("$"))
            except ValueError:
                return f"not a number of dollars: {value!r}"
            if number <= row.spent_usd:
                return f"{usd(row.spent_usd)} is already spent: the new cap must be more"
            return None

        def done(value: str | None) -> None:
            if value:
                cap = float(value.removeprefix("$"))
                app.act(
                    f"Budget of {row.name} set to {usd(cap, 2)}",
                    control.set_budget,
                    app.store,
                    row.id,
                    {"usd": cap},
                    by=app.who,
                )

        body = (
            f"Run {row.name} has spent {usd(row.spent_usd)} of {usd(current, 2)}. "
            "The new cap replaces budget.usd; a run waiting for a raise goes on."
        )
        app.push_screen(
            AskScreen(
                "Raise the budget", body, value=f"{max(current * 2, row.spent_usd + 1):.2f}", check=check
            ),
            done,
        )

    def _reset_breaker(self, row: RunRow) -> None:
        if not row.open_breakers:
            self.app.notify(f"{row.name} has no open breaker.", severity="warning")
            return
        name = row.open_breakers[0]
        others = row.open_breakers[1:]
        body = (
            f"Reset breaker {name} of run {row.name} to half-open: the next session is a trial, and one "
            "more bad sign opens it again."
            + (f"\n\nStill open after this: {', '.join(others)}." if others else "")
        )
        self._confirm(
            f"Reset {name}?",
            body,
            "Reset",
            lambda: self.app.act(
                f"Breaker {name} of {row.name} is half-open",
                control.reset_breaker,
                self.app.store,
                row.id,
                name,
                by=self.app.who,
            ),
        )


def _judge(store: Any, run_id: str, who: str) -> tuple[Any, str]:
    judgement = control.judge_now(store, run_id, by=who)
    passed = sum(1 for f in judgement.features if judgement.statuses.get(f) == "pass")
    return None, f"checkpoint {judgement.checkpoint_id}: {passed} of {len(judgement.features)} features pass"


def confirm(app: LongrunApp, title: str, body: str, yes: str, then: Any) -> None:
    """A `ConfirmScreen`; `then()` runs if the person says yes."""

    def done(sure: bool | None) -> None:
        if sure:
            then()

    app.push_screen(ConfirmScreen(title, body, yes), done)


def ask_resume_from(app: LongrunApp, run: RunView, cp: CheckpointView) -> None:
    """A session of `run` now, from `cp` (a rewind to it first, when it is not the head)."""
    if cp.id == run.head_checkpoint_id:
        body = f"Start a session of {run.name} now, from its head, checkpoint #{cp.id}."
    else:
        body = (
            f"Rewind {run.name} to checkpoint #{cp.id}, then start a session from there now.\n\n"
            f"The current state is checkpointed first and kept under "
            f"refs/longrun/{run.id}/abandoned/…; the workspace's files become those of commit "
            f"{cp.commit[:12]}. Nothing in the log is lost."
        )
    confirm(
        app,
        "Resume from here?",
        body,
        "Resume",
        lambda: app.act(
            f"Resumed {run.name} from #{cp.id}", control.resume_now, app.store, run.id, cp.id, by=app.who
        ),
    )


def ask_rewind(app: LongrunApp, run: RunView, cp: CheckpointView) -> None:
    """Move `run` back to `cp`, after saying exactly what happens."""
    if cp.id == run.head_checkpoint_id:
        app.notify(f"#{cp.id} is already the head of {run.name}.", severity="warning")
        return
    body = (
        f"Move {run.name} back to checkpoint #{cp.id} (commit {cp.commit[:12]}).\n\n"
        f"The current state is checkpointed first and kept under refs/longrun/{run.id}/abandoned/…, "
        f"the branch {run.branch} and the workspace's files go back to that commit, and the next "
        "session starts from there. No session starts now."
    )
    confirm(
        app,
        "Rewind?",
        body,
        "Rewind",
        lambda: app.act(
            f"Rewound {run.name} to #{cp.id}", control.rewind, app.store, run.id, cp.id, by=app.who
        ),
    )


def ask_fork(app: LongrunApp, run: RunView, cp: CheckpointView) -> None:
    """A new run from `cp` of `run`, named by the person; it opens once made."""

    def made(name: str | None) -> None:
        if name:
            app.act(
                f"Forked {run.name} from #{cp.id} as {name}",
                control.fork,
                app.store,
                run.id,
                cp.id,
                name=name,
                by=app.who,
                open_it=True,
            )

    body = (
        f"A new run from checkpoint #{cp.id} of {run.name}: its own git worktree next to "
        f"{run.workspace.rsplit('/', 1)[-1]}, its own branch at commit {cp.commit[:12]}, its own "
        "budget and breakers, the same done-condition. It starts paused; "
        f"{run.name} is not touched. Name the new run:"
    )
    app.push_screen(AskScreen("Fork from here", body, value=f"{run.name}-fork"[:64]), made)
