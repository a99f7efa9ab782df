"""Tampering with a finished demo store, table by table, and what `longrun verify` says of it.

One demo runs per module (the real sessions, judge and approval, about a minute); each test edits
a copy of its store with plain sqlite3, triggers dropped as an attacker would, and runs
`longrun verify` as a person does: exit 1, one line naming the break (the table, the row, the
field and what the log says), and the same in `--json`. The untouched store verifies clean, and
reads and `verify` work on it read-only.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import read_only
import tampering


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished demo store (done after its sessions, its push approved) and its run id: made
    once per test session, under a lock, and shared by the xdist workers (each copies it)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above each worker's own
    folder = shared / "demo-store"
    with (shared / "demo-store.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        made = folder / "run-id"
        if not made.exists():
            home = folder / "home"
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "longrun.app.cli",
                    "demo",
                    "--headless",
                    "--auto-approve",
                    "--timeout",
                    "240",
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "LONGRUN_HOME": str(home), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
                timeout=300,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            made.write_text(proc.stdout.strip().splitlines()[0].split()[2].rstrip(":"))
    return folder / "home", made.read_text()


@pytest.fixture
def copy(demo_home: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    home, run_id = demo_home
    target = tmp_path / "home"
    shutil.copytree(home, target, symlinks=True)
    return target, run_id


def verify(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "longrun.app.cli", "--home", str(home), "verify", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_finished_demo_store_verifies_clean(copy: tuple[Path, str]) -> None:
    home, run_id = copy
    proc = verify(home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"run demo ({run_id}): chain whole: ")
    for checked in ("head matches", "anchored outside the store", "1 approval", "3 sessions", "verdicts"):
        assert checked in line, line
    document = json.loads(verify(home, run_id, "--json").stdout)
    assert document["ok"] is True and document["breaks"] == []


def _first_verdict_where(home: Path, run_id: str, status: str) -> int:
    rows = tampering.query(
        home, "SELECT min(id) FROM verdict WHERE run_id = ? AND status = ?", (run_id, status)
    )
    return int(rows[0][0])


def _last_checkpoint(home: Path, run_id: str) -> int:
    return int(tampering.query(home, "SELECT max(id) FROM checkpoint WHERE run_id = ?", (run_id,))[0][0])


# (what is done, the tamper given the home and run id, the kind it must be called, what the line says)
CASES: list[tuple[str, Any, str, list[str]]] = [
    (
        "delete the last event",
        lambda home, run: tampering.delete_tail(run, 1)(home),
        "tail_truncated",
        ["tail truncated:", "is gone"],
    ),
    (
        "delete the last 20 events",
        lambda home, run: tampering.delete_tail(run, 20)(home),
        "tail_truncated",
        ["tail truncated:", "are gone"],
    ),
    (
        "delete all of the run's events",
        lambda home, run: tampering.delete_all_events(run)(home),
        "tail_truncated",
        ["tail truncated:", "the log has 0: events 1–"],
    ),
    (
        "delete the last 20 events and rewrite the head with them",
        lambda home, run: tampering.delete_tail_and_rewrite_head(run, 20)(home),
        "tail_truncated",
        ["the anchor outside the store says", "its head was rewritten to match"],
    ),
    (
        "change who decided the approval",
        lambda home, run: tampering.set_column("approval", "decided_by", "mallory", "id = 1", ())(home),
        "row_changed",
        ["row changed: approval 1 (tool_call): decided_by 'mallory'", "says 'demo --auto-approve'"],
    ),
    (
        "put the decided approval back to pending",
        lambda home, run: tampering.run_sql(
            "UPDATE approval SET state = 'pending', decided_by = NULL, decided_at = NULL WHERE id = 1"
        )(home),
        "row_changed",
        ["approval 1 (tool_call) is pending again", "approved by 'demo --auto-approve'"],
    ),
    (
        "change a checkpoint's commit",
        lambda home, run: tampering.set_column(
            "checkpoint", "commit", "0" * 40, "id = ?", (_last_checkpoint(home, run),)
        )(home),
        "row_changed",
        ["row changed: checkpoint", "commit '0000000000"],
    ),
    (
        "change a checkpoint's spend",
        lambda home, run: tampering.set_column(
            "checkpoint", "spent_usd", 0.01, "id = ?", (_last_checkpoint(home, run),)
        )(home),
        "row_changed",
        ["row changed: checkpoint", "spent_usd 0.01 (event"],
    ),
    (
        "turn a failing verdict into a pass",
        lambda home, run: tampering.set_column(
            "verdict", "status", "pass", "id = ?", (_first_verdict_where(home, run, "fail"),)
        )(home),
        "row_changed",
        ["row changed: verdict", "status 'pass'", "says 'fail'"],
    ),
    (
        "change how a session ended",
        lambda home, run: tampering.run_sql(
            "UPDATE session SET state = 'crashed' WHERE run_id = ? AND n = 1", (run,)
        )(home),
        "row_changed",
        ["row changed: session 1", "state 'crashed'", "says 'ended'"],
    ),
    (
        "raise the budget behind the log's back",
        lambda home, run: tampering.run_sql(
            "UPDATE run SET spec_json = json_set(spec_json, '$.budget.usd', 500) WHERE id = ?", (run,)
        )(home),
        "row_changed",
        ["row changed: run: budget.usd 500"],
    ),
]


@pytest.mark.parametrize(("tamper", "kind", "said"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verify_names_each_tamper_of_the_demo_store(
    copy: tuple[Path, str], tamper: Any, kind: str, said: list[str]
) -> None:
    home, run_id = copy
    tamper(home, run_id)
    proc = verify(home)
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    named = [line for line in lines if all(words in line for words in said)]
    assert named, f"no line says {said}:\n{proc.stdout}"
    assert all(line.startswith(f"run demo ({run_id}): ") for line in lines)
    document = json.loads(verify(home, run_id, "--json").stdout)
    assert document["ok"] is False
    assert kind in {b["kind"] for b in document["breaks"]}


def test_the_demo_store_is_read_and_verified_read_only(copy: tuple[Path, str]) -> None:
    home, run_id = copy
    with read_only.read_only_cli(home, "filesystem") as (_, cli_ro):
        listed = cli_ro("run", "list")
        assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
        checkpoints = cli_ro("checkpoints", run_id)
        assert checkpoints.returncode == 0, checkpoints.stderr
        verified = cli_ro("verify", run_id)
        assert verified.returncode == 0 and "chain whole" in verified.stdout, (
            verified.stdout + verified.stderr
        )
