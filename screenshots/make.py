"""Regenerate the screenshots in this folder from a real demo run.

    python screenshots/make.py

Runs the headless demo into a temporary store (no network, no key), opens the dashboard on it
at 100x30, and saves each screen as SVG, and as PNG when `rsvg-convert` (librsvg2-bin) is
installed.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from longrun.app.tui import LongrunApp
from longrun.scheduler.control import decide, prepare_demo, start
from longrun.scheduler.supervisor import supervise_until_finished
from longrun.store import runs
from longrun.store.db import Store

HERE = Path(__file__).resolve().parent
SIZE = (100, 30)


async def _shoot(store: Store, name: str) -> Path:
    app = LongrunApp(store, banner="Demo run: a SCRIPTED model (no network, no key) built a small project.")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        path = HERE / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(HERE))
    return path


def main() -> int:
    with tempfile.TemporaryDirectory() as home:
        store = Store.open(home)
        run = prepare_demo(store)
        start(store, run.id, by="screenshots")
        if not supervise_until_finished(store, run.id, timeout_s=300):
            print("the demo did not finish", file=sys.stderr)
            return 1
        for approval in runs.list_approvals(store, run.id, state="pending"):  # the demo's push
            decide(store, approval.id, approve=True, by="screenshots")
        if not supervise_until_finished(store, run.id, timeout_s=300):
            print("the demo did not finish after its approval", file=sys.stderr)
            return 1
        svg = asyncio.run(_shoot(store, "runs"))
    print(f"wrote {svg.relative_to(HERE.parent)}")
    if shutil.which("rsvg-convert"):
        png = svg.with_suffix(".png")
        subprocess.run(["rsvg-convert", "-o", str(png), str(svg)], check=True)
        print(f"wrote {png.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
