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

from longrun.store import runs
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
    parser.add_argument(
        "--demo", action="store_true", help="start the demo run (a scripted model) and watch it"
    )
    args = parser.parse_args(argv)
    try:
        store = Store.open(args.home)
    except LongrunError as exc:
        print(f"longrun-ui: error: {exc.message}", file=sys.stderr)
        return 1
    banner = None
    if args.demo:
        log = store.home / "logs" / "demo-ui.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            subprocess.Popen(
                [sys.executable, "-m", "longrun.app.cli", "--home", str(store.home), "demo", "--headless"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        banner = "Demo: a scripted model (no network, no key) is building a small project. Watch it go."
    LongrunApp(store, banner=banner).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
