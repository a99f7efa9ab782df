"""The store: append-only log, hash chain, schema version, pragmas, and what `verify` finds."""

from __future__ import annotations

import gc
import json
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import read_only

from longrun.store import log, runs
from longrun.store.db import Store, store_error
from longrun.store.errors import (
    InvalidTransition,
    RunNotFound,
    StoreBusy,
    StoreConflict,
    StoreCorrupt,
    StoreError,
    StoreReadOnly,
    StoreVersionError,
)
from longrun.store.models import SCHEMA_VERSION, SessionState


def _run(store: Store, run_id: str = "r1", name: str = "alpha") -> runs.RunView:
    return runs.insert_run(
        store,
        run_id=run_id,
        name=name,
        goal="a goal",
        spec={"name": name},
        spec_path=None,
        workspace=f"/nowhere/{run_id}",
        branch=f"longrun/{run_id}",
        state="scheduled",
    )


def test_the_store_runs_in_wal_mode_with_a_busy_timeout(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_the_event_table_refuses_update_and_delete(store: Store) -> None:
    _run(store)
    log.record(store, "r1", "note", {"text": "hello"})
    with sqlite3.connect(store.path) as db:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE event SET data = '{}' WHERE seq = 2")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM event")
    assert [e.kind for e in log.read_events(store, "r1")] == ["run_created", "note"]


def test_each_thread_appends_on_its_own_connection_which_ends_with_it(store: Store) -> None:
    """`log.record` takes the store's hot connection of its thread; threads come and go (the
    dashboard's workers), and their connections must not pile up until the store closes."""
    _run(store)

    def append() -> None:
        log.record(store, "r1", "note", {"from": threading.current_thread().name})

    for _ in range(20):
        thread = threading.Thread(target=append)
        thread.start()
        thread.join()
    gc.collect()
    assert len(store._hot_all) == 0  # noqa: SLF001 (what the store holds open is the point)
    append()
    assert len(store._hot_all) == 1  # noqa: SLF001
    assert len(log.read_events(store, "r1", kinds=["note"])) == 21
    assert log.verify_chain(store, "r1").ok
    store.close()
    assert len(store._hot_all) == 0  # noqa: SLF001


def test_each_event_chains_to_the_previous_one_of_its_run(store: Store) -> None:
    _run(store, "r1")
    _run(store, "r2", "beta")
    for i in range(3):
        log.record(store, "r1", "note", {"i": i})
        log.record(store, "r2", "note", {"i": i})
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT seq, prev_hash, hash FROM event WHERE run_id='r1' ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert rows[0][1] == log.GENESIS
    for before, after in zip(rows, rows[1:], strict=False):
        assert after[1] == before[2]
    assert log.verify_chain(store, "r1").ok and log.verify_chain(store, "r2").ok


def _tamper(path: Path, sql: str) -> None:
    """Edit the file behind the triggers' back, as an attacker with the file would."""
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER event_append_only_update")
        db.execute("DROP TRIGGER event_append_only_delete")
        db.execute(sql)


def test_verify_finds_an_edited_event(store: Store, cli) -> None:
    _run(store)
    for i in range(5):
        log.record(store, "r1", "note", {"i": i})
    _tamper(store.path, """UPDATE event SET data = '{"i":99}' WHERE run_id = 'r1' AND seq = 4""")
    report = log.verify_chain(store, "r1")
    assert not report.ok and report.broken_at == 4 and "content" in (report.reason or "")
    proc = cli("verify", "r1")
    assert proc.returncode == 1
    assert "broken at event 4" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_verify_finds_a_deleted_event(store: Store) -> None:
    _run(store)
    for i in range(5):
        log.record(store, "r1", "note", {"i": i})
    _tamper(store.path, "DELETE FROM event WHERE run_id = 'r1' AND seq = 3")
    report = log.verify_chain(store, "r1")
    assert not report.ok and report.broken_at == 3 and "missing" in (report.reason or "")


def test_verify_finds_a_rewritten_tail(store: Store) -> None:
    """Recomputing one event's hash is not enough: the next event's link gives it away."""
    _run(store)
    for i in range(4):
        log.record(store, "r1", "note", {"i": i})
    with sqlite3.connect(store.path) as db:
        seq, session_id, ts, kind, _, prev_hash = db.execute(
            "SELECT seq, session_id, ts, kind, data, prev_hash FROM event WHERE run_id='r1' AND seq=3"
        ).fetchone()
    forged = log.event_hash(prev_hash, "r1", seq, ts, session_id, kind, '{"i":42}')
    _tamper(
        store.path, f"""UPDATE event SET data = '{{"i":42}}', hash = '{forged}' WHERE run_id='r1' AND seq=3"""
    )
    report = log.verify_chain(store, "r1")
    assert not report.ok and report.broken_at == 4


def test_a_store_written_by_a_newer_longrun_is_refused_clearly(home: Path, cli) -> None:
    Store.open(home).close()
    with sqlite3.connect(home / "longrun.db") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreVersionError, match="newer longrun"):
        Store.open(home)
    proc = cli("run", "list")
    assert proc.returncode == 1
    assert "newer longrun" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_a_store_is_refused_clearly(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "longrun.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(home)


def test_runs_are_found_by_id_prefix_or_name(store: Store) -> None:
    _run(store, "abc12345", "first")
    _run(store, "abd99999", "second")
    assert runs.get_run(store, "abc").id == "abc12345"
    assert runs.get_run(store, "second").id == "abd99999"
    with pytest.raises(RunNotFound):
        runs.get_run(store, "ab")  # ambiguous prefix, and no run has that name
    with pytest.raises(RunNotFound):
        runs.get_run(store, "zzz")


def test_session_numbers_count_up_per_run_and_an_end_is_recorded_once(store: Store) -> None:
    _run(store)
    box = {"time_box": timedelta(minutes=5), "wrap_up": timedelta(minutes=1)}
    first = runs.create_session(store, "r1", **box)
    with pytest.raises(InvalidTransition, match="already has session 1"):
        runs.create_session(store, "r1", **box)
    assert runs.end_session(store, first.id, SessionState.crashed, "gone") is not None
    assert runs.end_session(store, first.id, SessionState.ended, "late word") is None
    second = runs.create_session(store, "r1", **box)
    assert (first.n, second.n) == (1, 2)
    assert runs.get_session(store, first.id).state == "crashed"
    ended = [e for e in log.read_events(store, "r1", kinds=["session_ended"])]
    assert len(ended) == 1


# --- errors at the store's edge -----------------------------------------------------------------


def test_a_write_the_schema_refuses_comes_out_as_a_conflict_naming_the_store(store: Store) -> None:
    _run(store, "r1")
    with pytest.raises(StoreConflict) as caught:
        _run(store, "r1", "again")
    assert str(store.path) in caught.value.message and "UNIQUE" in caught.value.message
    with pytest.raises(StoreConflict, match="append-only"):
        with store.writing() as conn:
            conn.exec_driver_sql("DELETE FROM event")
    assert [e.kind for e in log.read_events(store, "r1")] == ["run_created"]


def test_a_write_on_a_read_only_connection_is_a_read_only_error(store: Store) -> None:
    with pytest.raises(StoreReadOnly, match="read-only"):
        with store.writing() as conn:
            conn.exec_driver_sql("PRAGMA query_only=ON")
            try:
                conn.exec_driver_sql("INSERT INTO meta (key, value) VALUES ('x', 'y')")
            finally:
                conn.exec_driver_sql("PRAGMA query_only=OFF")


def test_a_held_write_lock_is_busy_and_a_damaged_file_is_corrupt(store: Store, home: Path) -> None:
    holder = sqlite3.connect(store.path, isolation_level=None)
    other = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as raw:
            other.execute("BEGIN IMMEDIATE")
        busy = store_error(raw.value, store.path)
        assert isinstance(busy, StoreBusy) and "busy" in busy.message and str(store.path) in busy.message
    finally:
        holder.close()
        other.close()
    store.close()
    (home / "longrun.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorrupt, match="cannot open the store: damaged"):
        Store.open(home)


def test_nothing_above_the_store_imports_sqlalchemy_exceptions() -> None:
    root = Path(__file__).resolve().parents[2]
    users = [
        str(path.relative_to(root))
        for folder in ("app", "scheduler", "evaluators", "bench")
        for path in (root / folder).rglob("*.py")
        if "sqlalchemy.exc" in path.read_text()
    ]
    assert users == []


# --- a store that cannot be written ---------------------------------------------------------------


@pytest.fixture
def finished_store(home: Path) -> Path:
    """A store with a run and a few events, closed (as a finished store copied somewhere is)."""
    store = Store.open(home)
    _run(store)
    for i in range(3):
        log.record(store, "r1", "note", {"i": i})
    store.close()
    assert not (home / "longrun.db-wal").exists()
    return home


@pytest.mark.parametrize("way", read_only.WAYS)
def test_a_read_only_store_is_read_and_verified_and_a_write_says_read_only(
    finished_store: Path, way: str
) -> None:
    with read_only.read_only_cli(finished_store, way) as (home, cli_ro):
        listed = cli_ro("run", "list")
        assert listed.returncode == 0, listed.stderr
        assert "alpha" in listed.stdout
        events = cli_ro("events", "r1", "--json")
        assert events.returncode == 0, events.stderr
        assert [e["kind"] for e in json.loads(events.stdout)] == ["run_created", "note", "note", "note"]
        verified = cli_ro("verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "chain whole: 4 events verified" in verified.stdout and "head matches" in verified.stdout
        paused = cli_ro("run", "pause", "r1")
        assert paused.returncode == 1 and "Traceback" not in paused.stderr
        (line,) = paused.stderr.strip().splitlines()
        assert f"{home}: the store is read-only (" in line, line
        assert not (home / "longrun.db-wal").exists() and not (home / "longrun.db-shm").exists()


def test_the_dashboard_refuses_to_start_the_demo_in_a_read_only_store(finished_store: Path) -> None:
    with read_only.read_only_cli(finished_store, "filesystem", program="longrun.app.tui") as (home, ui):
        proc = ui("--demo")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == (
        f"longrun-ui: error: {home}: the store is read-only (it is on a read-only file system): "
        "no demo can start"
    )


def test_a_read_only_store_beside_a_live_writer_reads_what_it_committed(home: Path) -> None:
    """While a writer holds the store open (its -wal and -shm are there), a reader that may not
    write sees every committed event, the ones still in the write-ahead log too."""
    store = Store.open(home)
    try:
        _run(store)
        log.record(store, "r1", "note", {"live": True})
        assert (home / "longrun.db-wal").exists() and (home / "longrun.db-shm").exists()
        with read_only.read_only_cli(home, "filesystem") as (_, cli_ro):
            events = cli_ro("events", "r1", "--json")
            assert events.returncode == 0, events.stderr
            assert [e["data"] for e in json.loads(events.stdout)][-1] == {"live": True}
            assert cli_ro("verify", "r1").returncode == 0
    finally:
        store.close()


def test_opening_a_read_only_store_in_process_says_why_and_refuses_writes(finished_store: Path) -> None:
    script = (
        "from longrun.store.db import Store\n"
        "from longrun.store import log\n"
        "from longrun.store.errors import StoreReadOnly\n"
        "import sys\n"
        "store = Store.open(sys.argv[1], create=False)\n"
        "print(store.read_only)\n"
        "try:\n"
        "    log.record(store, 'r1', 'note', {})\n"
        "except StoreReadOnly as exc:\n"
        "    print(exc)\n"
    )
    with read_only.read_only_cli(finished_store, "filesystem") as (home, _):
        proc = subprocess.run(
            [
                "unshare",
                "--mount",
                "sh",
                "-c",
                'mount --bind -o ro "$1" "$1" && shift && exec "$@"',
                "sh",
                str(home),
                sys.executable,
                "-c",
                script,
                str(home),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    reason, refused = proc.stdout.strip().splitlines()
    assert reason == "it is on a read-only file system"
    assert (
        refused == f"{home}: the store is read-only (it is on a read-only file system): it cannot be written"
    )
