"""Regenerate `report.png`: the HTML report of a synthetic 24-hour run, shot in headless Chromium.

    python screenshots/report.py [--events N]

Writes a synthetic day of work (`bench.synth`, 100,000 events by default) into a temporary store,
builds its report with `longrun report`'s own function, and shoots the whole page 1400 pixels
wide. Chromium runs twice: once to measure the page's height once plotly has drawn it, once to
shoot it at that height. Network look-ups are refused, so the shot proves the page is offline.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from longrun.app.report import build_report, write_report
from longrun.bench.synth import synthesize
from longrun.store.db import Store

HERE = Path(__file__).resolve().parent
WIDTH = 1400
MEASURE = """<script>window.addEventListener("load", function () {
  setTimeout(function () { document.title = "height=" + document.documentElement.scrollHeight; }, 500);
});</script>"""


def chromium_command(chromium: str, profile: Path, *args: str) -> list[str]:
    return [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=15000",
        *args,
    ]


def page_height(chromium: str, page: Path, work: Path) -> int:
    """The page's full height at WIDTH, read from a copy that writes it into its title."""
    probe = work / "probe.html"
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8"
    )
    proc = subprocess.run(
        chromium_command(
            chromium, work / "profile", f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri()
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = re.search(r"<title>height=(\d+)</title>", proc.stdout)
    if found is None:
        raise RuntimeError("chromium did not report the page's height")
    return int(found.group(1))


def shoot(chromium: str, page: Path, out: Path, work: Path) -> None:
    height = page_height(chromium, page, work)
    subprocess.run(
        chromium_command(
            chromium,
            work / "profile",
            f"--window-size={WIDTH},{height}",
            f"--screenshot={out}",
            page.as_uri(),
        ),
        capture_output=True,
        timeout=120,
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the synthetic run")
    parser.add_argument("--out", type=Path, default=HERE / "report.png", help="the PNG to write")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="longrun-report-shot-") as tmp:
        work = Path(tmp)
        store = Store.open(work / "home")
        try:
            made = synthesize(store, hours=24.0, events=args.events, seed=0)
            page = write_report(build_report(store, made.run_id), work / "report.html")
        finally:
            store.close()
        shoot(chromium, page, args.out, work)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
