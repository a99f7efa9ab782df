"""`longrun-ui`: the Textual dashboard (for now, the runs list, following the store live)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from longrun.store import lease, runs
from longrun.store.db import Store
from longrun.store.errors import LongrunError
from longrun.store.runs import RunView

POLL_SECONDS = 1.0


@dataclass
class RunsLoaded(Message):
    """A fresh read of the runs list."""

    runs: list[RunView]


class LongrunApp(App[None]):
    CSS_PATH = "longrun.tcss"
    TITLE = "longrun"
    BINDINGS = [Binding("q", "quit", "Quit", tooltip="Leave longrun-ui (runs go on without it)", id="quit")]

    def __init__(self, store: Store, *, banner: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.banner = banner

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.banner or f"store: {self.store.path}", id="banner")
        table: DataTable[str] = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        table.add_columns("ID", "NAME", "STATE", "SPENT", "TOKENS", "REASON")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.load_runs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll")
    def load_runs(self) -> None:
        self.post_message(RunsLoaded(runs.list_runs(self.store)))

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        for r in message.runs:
            table.add_row(
                r.id,
                r.name,
                r.state,
                f"${r.spent_usd:.4f}",
                f"{r.usage.tokens:,}",
                r.state_reason or "",
                key=r.id,
            )
        self.set_timer(POLL_SECONDS, self.load_runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="longrun-ui", description="The longrun dashboard.")
    parser.add_argument("--home", metavar="DIR", help="the store's directory")
    parser.add_argument("--demo", action="store_true", help="start the demo run (a scripted model)")
    parser.add_argument("--no-daemon", action="store_true", help="do not start a supervisor if none runs")
    args = parser.parse_args(argv)
    try:
        store = Store.open(args.home)
        notes = [] if args.no_daemon else [ensure_supervisor(store)]
        if args.demo:
            from longrun.scheduler.control import prepare_demo, start

            run = prepare_demo(store)
            start(store, run.id, by="longrun-ui --demo")
            notes.append(f"Demo run {run.id}: a SCRIPTED model (no network, no key) builds a small project.")
    except LongrunError as exc:
        print(f"longrun-ui: error: {exc.message}", file=sys.stderr)
        return 1
    LongrunApp(store, banner=" ".join(notes) or None).run()
    return 0


def ensure_supervisor(store: Store) -> str:
    """Start `longrun daemon` in the background when no live supervisor holds the lease.

    The UI never schedules in its own process (every `textual serve` tab is a process of its
    own); the daemon keeps the runs going after the UI closes.
    """
    current = lease.current(store)
    if current is not None and current.alive():
        return f"Supervisor running (pid {current.pid})."
    log_path = store.home / "logs" / "daemon.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "longrun.app.cli", "daemon", "--home", str(store.home)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return f"Started the supervisor in the background (pid {proc.pid}); runs go on after you quit."


if __name__ == "__main__":
    sys.exit(main())
