"""The dashboard app: the screens, the store followed live, and actions handed to `scheduler.control`.

`make_app(store, clock)` builds it from explicit inputs, so tests and the screenshot script run
it on a seeded store with a frozen clock. The app holds no state the store does not have: it
keeps the last read of the store, and a cursor saying what it has seen.
"""

from __future__ import annotations

import gc
import getpass
import importlib
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from platformdirs import user_downloads_path
from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode

from longrun.app.messages import ActionDone, Polled
from longrun.app.palette import LongrunCommands
from longrun.store import board, lease, runs
from longrun.store.board import Changes, Cursor, RunRow
from longrun.store.db import Store
from longrun.store.errors import LongrunError
from longrun.store.lease import LeaseView
from longrun.store.models import utcnow
from longrun.store.runs import ApprovalView
from longrun.store.runs.requests import (
    BreakerResetRequest,
    BudgetRaiseRequest,
    DoneConditionRequest,
    QuestionRequest,
    RatchetRequest,
    SignOffRequest,
    ToolCallRequest,
)

POLL_SECONDS = 1.0
TIDY_SECONDS = 5.0

Clock = Callable[[], datetime]


class LongrunApp(App[None]):
    CSS_PATH = "longrun.tcss"
    TITLE = "longrun"
    COMMANDS = App.COMMANDS | {LongrunCommands}
    BINDINGS = [
        Binding("i", "inbox", "Approvals", tooltip="What waits for you, from any screen", id="inbox"),
        Binding("question_mark", "help", "Help", tooltip="Every key, on every screen", id="help"),
        Binding("n", "new_run", "New run", tooltip="Create a run from a spec file", id="new_run", show=False),
        Binding("q", "back", "Back", tooltip="Go back; on the runs screen, quit", id="back"),
    ]

    def __init__(
        self,
        store: Store,
        clock: Clock = utcnow,
        *,
        banner: str | None = None,
        open_run_id: str | None = None,
        poll_seconds: float = POLL_SECONDS,
        who: str | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.banner = banner
        self.open_run_id = open_run_id
        self.poll_seconds = poll_seconds
        self.who = who or _user()
        self.rows: dict[str, RunRow] = {}
        self.pending: list[ApprovalView] = []
        self.supervisor: LeaseView | None = None
        self.live_sessions = 0
        self.judging: dict[str, int] = {}
        """Run id → its session that has ended and that the judge has not settled yet."""
        self.polled_once = False
        self.poll_error: str | None = None
        self._cursor: Cursor | None = None
        self._polling = False
        self._again = False
        self._timer: Any = None
        self._report_path: Path | None = None
        """Where the report on its way is being written (said if writing it fails)."""

    # --- screens ----------------------------------------------------------------------------------

    def on_mount(self) -> None:
        from longrun.app.screens.runs import RunsScreen

        self.push_screen(RunsScreen())
        if self.banner:
            self.notify(self.banner, timeout=15)
        if self.open_run_id:
            self.open_run(self.open_run_id)
        self.poll_now()
        self.set_interval(TIDY_SECONDS, self.tidy)

    def tidy(self) -> None:
        """Let closed widgets go. Textual keeps a watcher on the object it watches (the app's title
        for every Header, a Footer's `compact` for every key it ever showed) until that value next
        changes (Textualize/textual#6666), so each run screen opened and closed, and each footer
        redrawn, stayed in memory; and every garbage collection walked them all."""
        drop_dead_watchers(self)
        for screen in self.screen_stack:
            for node in screen.walk_children(with_self=True):
                drop_dead_watchers(node)

    def open_run(self, run_id: str, tab: str | None = None) -> None:
        """Show a run's screen (on top of the runs screen), its Overview read first; `tab` names
        the tab to show (the Overview when None).

        The read runs in a thread while the screen on show stays live; read while the new
        screen was being built, it waited for the building to let go of the GIL, and the run
        screen took half as long again to show the run."""
        self._open_run(run_id, tab)

    @work(thread=True, exit_on_error=False, group="open-run")
    def _open_run(self, run_id: str, tab: str | None) -> None:
        from longrun.app.widgets.overview import read_overview

        try:
            overview = read_overview(self.store, run_id, self.clock())
        except Exception:  # the screen's pane reads again, and says what went wrong
            overview = None
        self.call_from_thread(self._push_run, run_id, overview, tab)

    def _push_run(self, run_id: str, overview: Any, tab: str | None = None) -> None:
        from longrun.app.screens.run import RunScreen

        if isinstance(self.screen, RunScreen) and self.screen.run_id == run_id:
            if tab:
                self.screen.action_tab(tab)
            return  # asked twice (enter pressed again while the first read ran)
        self.push_screen(RunScreen(run_id, overview, tab=tab))

    def action_inbox(self) -> None:
        from longrun.app.screens.approvals import InboxScreen

        if not isinstance(self.screen, InboxScreen):
            self.push_screen(InboxScreen())

    def open_inbox_at(self, approval_id: int) -> None:
        """The inbox with one approval selected (from the command palette)."""
        from longrun.app.screens.approvals import InboxScreen

        if isinstance(self.screen, InboxScreen):
            self.pop_screen()
        self.push_screen(InboxScreen(select=approval_id))

    def action_help(self) -> None:
        from longrun.app.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_back(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()
        else:
            self.exit()

    def action_new_run(self) -> None:
        """Ask for a spec file and create its run before the dialog closes: a spec that does not
        load (or a run that cannot be made from it) keeps the dialog open, saying why."""
        from longrun.app.screens.modals import AskScreen

        store = self.store
        names: dict[str, str] = {}

        def create(path: str) -> str:
            run = _create_run(store, path)
            names[run.id] = run.name
            return str(run.id)

        def created(run_id: str | None) -> None:
            if run_id:
                self.notify(f"Created run {names.get(run_id, run_id)}: a draft until you start it (s).")
                self.poll_now()
                self.open_run(run_id)

        self.push_screen(
            AskScreen(
                "New run",
                "The spec file (TOML) to create the run from. It is checked before anything is "
                "written; the run starts as a draft until you start it.",
                placeholder="path/to/spec.toml",
                act=create,
            ),
            created,
        )

    # --- following the store ----------------------------------------------------------------------

    def poll_now(self) -> None:
        """Read what changed now (after an action), or as soon as the poll in flight ends."""
        if self._polling:
            self._again = True
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._polling = True
        self._poll()

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll")
    def _poll(self) -> None:
        try:
            changes = board.changes(self.store, self._cursor)
            supervisor = lease.current(self.store)
            pending = runs.list_approvals(self.store, state="pending")
            live = len(runs.live_sessions(self.store))
            judging = {s.run_id: s.n for s in runs.unsettled_sessions(self.store)}
        except Exception as exc:  # noqa: BLE001 - whatever it was, the poll says so and re-arms
            said = exc.message if isinstance(exc, LongrunError) else _unexpected(exc)
            self.post_message(
                Polled(Changes([], self._cursor or Cursor()), None, self.pending, 0, said, self.judging)
            )
            return
        self.post_message(Polled(changes, supervisor, pending, live, judging=judging))

    def on_polled(self, message: Polled) -> None:
        self._polling = False
        self._say_store_health(self.poll_error, message.error)
        self.poll_error = message.error
        changes = message.changes
        if message.error is None:
            if changes.everything:
                self.rows = {}
            for row in changes.rows:
                self.rows[row.id] = row
            self._cursor = changes.cursor
            self._arrivals(message.pending)
            self.pending = message.pending
            self.supervisor = message.supervisor
            self.live_sessions = message.live_sessions
            changes = self._with_judging(changes, message.judging)
        first = not self.polled_once
        self.polled_once = True
        for screen in self.screen_stack:
            follow = getattr(screen, "store_changed", None)
            # A screen pushed a moment ago has no widgets yet (it reads on mount), and none has
            # while the app closes: a poll that lands then is not theirs to show.
            if follow is not None and screen.is_mounted and screen.is_attached and not screen._closing:
                follow(changes, first)
        if self._again:
            self._again = False
            self.poll_now()
        else:
            self._timer = self.set_timer(self.poll_seconds, self.poll_now)

    def _with_judging(self, changes: Changes, judging: dict[str, int]) -> Changes:
        """`changes` with the runs whose judging began or ended since the last poll, so the
        screens say it now (the session's end and its settling were read apart from the rows)."""
        moved = {r for r in judging.keys() | self.judging.keys() if judging.get(r) != self.judging.get(r)}
        self.judging = judging
        listed = {row.id for row in changes.rows}
        extra = [self.rows[run_id] for run_id in sorted(moved - listed) if run_id in self.rows]
        return replace(changes, rows=[*changes.rows, *extra]) if extra else changes

    def _say_store_health(self, before: str | None, now: str | None) -> None:
        """A toast when reading the store starts failing, and one when it works again."""
        if now is not None and before is None:
            self.notify(
                f"{now}. Retrying every {self.poll_seconds:g} s.",
                title="Cannot read the store",
                severity="error",
                timeout=10,
            )
        elif now is None and before is not None:
            self.notify("The store is readable again; the screens are current.", title="Store", timeout=6)

    def _arrivals(self, pending: list[ApprovalView]) -> None:
        """A bell and a toast for each approval that arrived since the last poll."""
        if not self.polled_once:
            return
        seen = {a.id for a in self.pending}
        for approval in pending:
            if approval.id not in seen:
                self.bell()
                name = self.rows[approval.run_id].name if approval.run_id in self.rows else approval.run_id
                self.notify(
                    f"{name} asks: {describe_short(approval)}. Press i to decide.",
                    title=f"Approval {approval.id}",
                    severity="warning",
                    timeout=10,
                )

    def ordered_rows(self) -> list[RunRow]:
        return sorted(self.rows.values(), key=RunRow.sort_key)

    # --- actions ----------------------------------------------------------------------------------

    def act(
        self, said: str, fn: Callable[..., Any], *args: Any, open_it: bool = False, **kwargs: Any
    ) -> None:
        """Run `fn` (a `scheduler.control` call) in a worker; say how it went in a toast."""
        self._act(said, fn, args, kwargs, open_it)

    @work(thread=True, exit_on_error=False, group="act")
    def _act(
        self, said: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], open_it: bool
    ) -> None:
        try:
            result = fn(*args, **kwargs)
        except LongrunError as exc:
            self.post_message(ActionDone(exc.message, ok=False))
            return
        except Exception as exc:  # noqa: BLE001 - an action that breaks says so rather than vanish
            self.post_message(ActionDone(f"{said} failed: {_unexpected(exc)}", ok=False))
            return
        extra = (
            result[1] if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str) else ""
        )
        run = result[0] if isinstance(result, tuple) else result
        run_id = getattr(run, "id", None) if open_it else None
        self.post_message(ActionDone(f"{said}{': ' + extra if extra else ''}", run_id=run_id))

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.said, severity="information" if message.ok else "error", timeout=6)
        self.poll_now()
        if message.run_id:
            self.open_run(message.run_id)

    # --- the audit report ---------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="report")
    def make_report(self, run_id: str, name: str) -> None:
        """Build a run's HTML report off the event loop, then deliver it: a download in a browser
        tab; in a terminal, a file in the first folder of `report_folders()` that can take it,
        opened in the web browser where there is one."""
        from longrun.app.report import build_report

        try:
            html = build_report(self.store, run_id)
        except LongrunError as exc:
            self.post_message(ActionDone(exc.message, ok=False))
            return
        stamp = self.clock().strftime("%Y%m%d-%H%M")
        folder = None if self.is_web else report_folder()
        self.call_from_thread(self._deliver_report, html, f"longrun-report-{name}-{stamp}.html", folder)

    def _deliver_report(self, html: str, filename: str, folder: Path | None) -> None:
        self._report_path = folder / filename if folder is not None else None
        self.deliver_text(
            io.StringIO(html),
            save_directory=folder,
            save_filename=filename,
            open_method="browser",
            mime_type="text/html",
            name="report",
        )

    def on_delivery_complete(self, event: events.DeliveryComplete) -> None:
        if event.name != "report":
            return
        if event.path is None:
            self.notify("Report sent to your browser.", title="Report", timeout=REPORT_TOAST_SECONDS)
            return
        path = event.path.absolute()
        where = "" if _is_downloads(path.parent) else " (there is no downloads folder to write to)"
        opening = not self.is_web and _can_open_a_browser()
        self.notify(
            f"Report saved to {path}{where}" + ("; opening it in your browser." if opening else "."),
            title="Report",
            severity="information",
            timeout=REPORT_TOAST_SECONDS,
        )
        if opening:
            self.open_url(path.as_uri())

    def on_delivery_failed(self, event: events.DeliveryFailed) -> None:
        if event.name == "report":
            where = f" to {self._report_path}" if self._report_path else ""
            self.notify(
                f"The report could not be saved{where}: {event.exception}",
                title="Report",
                severity="error",
                timeout=REPORT_TOAST_SECONDS,
            )


REPORT_TOAST_SECONDS = 30
"""A report's toast stays long enough to copy the path from it."""


def report_folders() -> Iterator[Path]:
    """Where a report may go in a terminal, best first: the downloads folder, the home folder,
    the current directory, the system's temp folder (servers often have no ~/Downloads)."""
    for where in (_downloads, Path.home, Path.cwd):
        try:
            yield where()
        except (OSError, RuntimeError, KeyError):  # no home, or a current directory deleted
            continue
    yield Path(tempfile.gettempdir())


def report_folder() -> Path:
    """The first of `report_folders()` that exists and can be written to."""
    for folder in report_folders():
        if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
            return folder
    return Path(tempfile.gettempdir())


def _downloads() -> Path:
    return user_downloads_path().absolute()


def _is_downloads(folder: Path) -> bool:
    try:
        return folder == _downloads()
    except (OSError, RuntimeError, KeyError):
        return False


def _can_open_a_browser() -> bool:
    """Whether a graphical browser can be shown: on a server over ssh there is none, and Python's
    `webbrowser` would start a text browser in the terminal the dashboard is drawing on."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def drop_dead_watchers(node: DOMNode) -> None:
    """Forget the watchers of `node` that belong to closed widgets."""
    watchers: dict[str, list[tuple[Any, Any]]] = getattr(node, "__watchers", {})
    for entries in watchers.values():
        entries[:] = [(owner, callback) for owner, callback in entries if not owner._closing]


def _create_run(store: Store, path: str) -> Any:
    from longrun.scheduler import control

    return control.create_run_from_file(store, Path(path).expanduser())


def _unexpected(exc: BaseException) -> str:
    """An error nobody planned for, as one line (its type and the first line of its message)."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"


def describe_short(approval: ApprovalView) -> str:
    """An approval in a few words: the command it would run, the question, the cap."""
    match approval.asks:
        case ToolCallRequest(tool=tool, input=args):
            what = args.get("command") or args.get("path") or ""
            return f"{tool or 'tool'} {what}".strip()
        case QuestionRequest(question=question):
            return question or "a question"
        case BudgetRaiseRequest(cap=cap):
            return f"more budget ({cap} is spent)"
        case BreakerResetRequest(breaker=breaker):
            return f"reset breaker {breaker or '?'}"
        case DoneConditionRequest(features=features):
            return f"a done-condition of {len(features)} features"
        case SignOffRequest():
            return "sign-off: every feature passes"
        case RatchetRequest(summary=summary):
            return f"accept fewer tests ({summary})"
    return approval.kind.replace("_", " ")


SCREENS = ("runs", "run", "approvals", "modals", "event", "help")


def settle() -> None:
    """Import every screen now and take what is alive out of the garbage collector's way.

    Once per process, before the app runs (`longrun-ui` does it). The modules, classes and
    functions imported so far live as long as the process, yet every full collection walked
    them again: some 100,000 objects, a 0.1–0.3 s stall whenever one came, as it does while a
    tab reads a large run. `gc.freeze` leaves them out of every collection after this one.
    """
    for name in SCREENS:
        importlib.import_module(f"longrun.app.screens.{name}")
    gc.collect()
    gc.freeze()


def make_app(
    store: Store,
    clock: Clock | None = None,
    *,
    banner: str | None = None,
    open_run_id: str | None = None,
    poll_seconds: float = POLL_SECONDS,
    who: str | None = None,
) -> LongrunApp:
    """The dashboard over `store`, telling time by `clock` (a fixed one in tests and screenshots)."""
    return LongrunApp(
        store, clock or utcnow, banner=banner, open_run_id=open_run_id, poll_seconds=poll_seconds, who=who
    )
