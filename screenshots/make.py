"""Regenerate the screenshots in this folder from a real demo run.

    python screenshots/make.py

Runs the demo into a temporary store (no network, no key) until it pauses on its `git push`,
shoots the runs screen, the approvals inbox and the approve dialog; approves the push, lets
the run finish, and shoots every tab of the run screen, the help screen and the command palette.
The dashboard is 100x30 and its clock is frozen just after the last event, so "ago" reads the
same on every run. Each screen is saved as SVG, and as PNG through headless Chromium (or
`rsvg-convert` when Chromium is not installed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from textual.pilot import Pilot

from longrun.app.dashboard import LongrunApp, make_app
from longrun.app.tui import ensure_supervisor
from longrun.scheduler.control import decide, prepare_demo, start
from longrun.store import lease, log, runs
from longrun.store.db import Store

HERE = Path(__file__).resolve().parent
SIZE = (100, 30)

Step = Callable[[Pilot[None], LongrunApp], Awaitable[None]]


async def _ready(pilot: Pilot[None], until: Callable[[], bool]) -> None:
    for _ in range(400):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if until():
            return
    raise RuntimeError("the dashboard did not get there")


async def _shoot(store: Store, clock: datetime, run_id: str, shots: list[tuple[str, Step]]) -> list[Path]:
    app = make_app(store, lambda: clock, poll_seconds=3600, who="you")
    written = []
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, lambda: app.polled_once)
        for name, step in shots:
            await step(pilot, app)
            await pilot.pause()
            path = HERE / f"{name}.svg"
            app.save_screenshot(filename=path.name, path=str(HERE))
            written.append(path)
    return written


async def runs_screen(pilot: Pilot[None], app: LongrunApp) -> None:
    await _ready(pilot, lambda: bool(app.rows))


async def inbox(pilot: Pilot[None], app: LongrunApp) -> None:
    await pilot.press("i")
    await _ready(pilot, lambda: type(app.screen).__name__ == "InboxScreen")


async def approve_dialog(pilot: Pilot[None], app: LongrunApp) -> None:
    await pilot.press("a")
    await _ready(pilot, lambda: type(app.screen).__name__ == "DecideScreen")
    await pilot.press(*"No remote here: trying it is harmless.")


def tab(key: str, number: int) -> Step:
    async def step(pilot: Pilot[None], app: LongrunApp) -> None:
        if type(app.screen).__name__ != "RunScreen":
            app.open_run(next(iter(app.rows)))
            await _ready(pilot, lambda: getattr(app.screen, "ready", False))
        await pilot.press(str(number))
        await _ready(pilot, lambda: app.screen.query_one(f"#{key}").ready)

    return step


async def help_screen(pilot: Pilot[None], app: LongrunApp) -> None:
    await pilot.press("question_mark")
    await _ready(pilot, lambda: type(app.screen).__name__ == "HelpScreen")


async def palette(pilot: Pilot[None], app: LongrunApp) -> None:
    await pilot.press("escape", "ctrl+p")
    await _ready(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
    await pilot.press(*"demo")
    await pilot.pause(0.5)


def frozen_clock(store: Store, run_id: str) -> datetime:
    last = log.read_events(store, run_id, since=log_size(store, run_id) - 1)
    return last[-1].ts + timedelta(seconds=5)


def log_size(store: Store, run_id: str) -> int:
    from longrun.store.board import event_count

    return event_count(store, run_id)


def to_png(svg: Path) -> Path | None:
    png = svg.with_suffix(".png")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        view = svg.read_text().split('viewBox="0 0 ', 1)[1].split('"', 1)[0].split()
        width, height = (int(float(v)) + 2 for v in view)
        subprocess.run(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                svg.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return png
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", "-o", str(png), str(svg)], check=True)
        return png
    return None


def wait_for(store: Store, run_id: str, state: str, timeout_s: float = 300) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if runs.get_run(store, run_id).state == state:
            return True
        time.sleep(0.5)
    return False


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        # Paths on screen are written from ~; a scratch home keeps this machine's out of the pictures.
        os.environ["HOME"] = scratch
        store = Store.open(Path(scratch) / ".longrun")
        run = prepare_demo(store)
        start(store, run.id, by="screenshots")
        ensure_supervisor(store)  # as longrun-ui does: `longrun daemon` in the background
        try:
            return _shots(store, run.id)
        finally:
            holder = lease.current(store)
            if holder is not None and holder.pid:
                os.kill(holder.pid, signal.SIGTERM)
                while holder.pid and _alive(holder.pid):
                    time.sleep(0.2)


def _alive(pid: int) -> bool:
    """Whether the daemon (our child) still runs; reaps it once it has exited."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def _shots(store: Store, run_id: str) -> int:
    if not wait_for(store, run_id, "awaiting_approval"):
        print("the demo did not reach its approval", file=sys.stderr)
        return 1
    waiting = asyncio.run(
        _shoot(
            store,
            frozen_clock(store, run_id),
            run_id,
            [("runs", runs_screen), ("inbox", inbox), ("approve", approve_dialog)],
        )
    )
    for approval in runs.list_approvals(store, run_id, state="pending"):  # the demo's push
        decide(store, approval.id, approve=True, by="you", comment="No remote here: trying it is harmless.")
    if not wait_for(store, run_id, "done"):
        print("the demo did not finish after its approval", file=sys.stderr)
        return 1
    done = asyncio.run(
        _shoot(
            store,
            frozen_clock(store, run_id),
            run_id,
            [
                ("overview", tab("overview", 1)),
                ("sessions", tab("sessions", 2)),
                ("checkpoints", tab("checkpoints", 3)),
                ("verdicts", tab("verdicts", 4)),
                ("events", tab("events", 5)),
                ("timeline", tab("timeline", 6)),
                ("help", help_screen),
                ("palette", palette),
            ],
        )
    )
    for svg in waiting + done:
        png = to_png(svg)
        print(f"wrote {svg.relative_to(HERE.parent)}" + (f" and {png.name}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
