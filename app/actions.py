"""The actions on a run, shared by the runs screen (the highlighted run) and the run screen.

Each goes through `scheduler.control` in a worker; the ones that cannot be undone ask first and
say exactly what will happen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.binding import Binding

from longrun.app.format import usd
from longrun.app.screens.modals import AskScreen, ConfirmScreen
from longrun.scheduler import control
from longrun.store.board import RunRow

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


class RunActions:
    """Mixin for a screen with a current run: `current_row()` says which."""

    app: LongrunApp

    def current_row(self) -> RunRow | None:
        raise NotImplementedError

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
        def done(sure: bool | None) -> None:
            if sure:
                then()

        self.app.push_screen(ConfirmScreen(title, body, yes), done)

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
