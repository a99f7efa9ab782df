"""Opening the store: where it lives, the engine and its pragmas, the schema and its version.

Nothing here opens a database at import time. `Store` is the handle every other part is given.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlmodel import Session, SQLModel

from longrun.store import models
from longrun.store.errors import (
    StoreBusy,
    StoreConflict,
    StoreCorrupt,
    StoreError,
    StoreReadOnly,
    StoreVersionError,
)

DB_NAME = "longrun.db"
BUSY_TIMEOUT_MS = 15_000

_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS event_append_only_update BEFORE UPDATE ON event
       BEGIN SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER IF NOT EXISTS event_append_only_delete BEFORE DELETE ON event
       BEGIN SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused'); END""",
)


def default_home() -> Path:
    """`$LONGRUN_HOME`, else the platform's user data directory for longrun."""
    env = os.environ.get("LONGRUN_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("longrun"))


def make_engine(path: Path | str) -> Engine:
    """An engine on the SQLite file at `path` with WAL, a busy timeout and foreign keys on every connection.

    Transactions are begun by us, not by the sqlite3 module: plain `BEGIN` for reads, and
    `BEGIN IMMEDIATE` on connections with the `longrun_write` execution option, so that a writer
    takes the write lock up front instead of failing halfway with SQLITE_BUSY.
    """
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("longrun_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_KINDS: tuple[tuple[str, type[StoreError], str], ...] = (
    ("SQLITE_BUSY", StoreBusy, f"busy: another process held the store for over {BUSY_TIMEOUT_MS // 1000} s"),
    ("SQLITE_LOCKED", StoreBusy, "busy: a table is locked by another statement"),
    ("SQLITE_CONSTRAINT", StoreConflict, "refused"),
    ("SQLITE_READONLY", StoreReadOnly, "read-only: this process cannot write the store"),
    ("SQLITE_CORRUPT", StoreCorrupt, "damaged: the database file is corrupt"),
    ("SQLITE_NOTADB", StoreCorrupt, "damaged: the file is not a longrun store"),
)


def store_error(exc: SQLAlchemyError | sqlite3.Error, path: Path, doing: str = "") -> StoreError:
    """The `StoreError` a database error means, naming the store's file and the database's reason."""
    where = f"{path}: {doing}: " if doing else f"{path}: "
    raw = exc.orig if isinstance(exc, DBAPIError) else exc
    reason = (str(raw) or type(raw).__name__).splitlines()[0]
    name = getattr(raw, "sqlite_errorname", "") or ""
    for prefix, kind, said in _KINDS:
        if name.startswith(prefix):
            return kind(f"{where}{said} ({reason})")
    if isinstance(exc, IntegrityError) or isinstance(raw, sqlite3.IntegrityError):
        return StoreConflict(f"{where}refused ({reason})")
    return StoreError(f"{where}{reason}")


@dataclass
class Store:
    """An open store: its home directory, a read engine and a write engine over the same pool."""

    home: Path
    engine: Engine

    @property
    def path(self) -> Path:
        return self.home / DB_NAME

    @classmethod
    def open(cls, home: Path | str | None = None, *, create: bool = True) -> Store:
        """Open (and, when `create`, initialise) the store in `home`.

        A store written by a newer schema is refused with a clear message, never migrated down.
        """
        home_path = Path(home).expanduser() if home is not None else default_home()
        db = home_path / DB_NAME
        if not db.exists() and not create:
            raise StoreError(f"{home_path}: no longrun store here (run `longrun init` first)")
        try:
            home_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{home_path}: cannot create the store directory: {exc.strerror}") from None
        engine = make_engine(db)
        store = cls(home=home_path, engine=engine)
        try:
            store._check_and_init()
        except StoreError:
            engine.dispose()
            raise
        return store

    def _check_and_init(self) -> None:
        with self.translated("cannot open the store"):
            with self.engine.connect() as conn:
                has_meta = conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                ).first()
                if has_meta:
                    row = conn.exec_driver_sql("SELECT value FROM meta WHERE key='schema_version'").first()
                    found = int(row[0]) if row else 0
                    if found > models.SCHEMA_VERSION:
                        raise StoreVersionError(
                            f"{self.path}: written by a newer longrun (schema {found}; this one reads up "
                            f"to {models.SCHEMA_VERSION}): upgrade longrun to open it"
                        )
                    if found == models.SCHEMA_VERSION:
                        return
            with self.engine.connect().execution_options(longrun_write=True) as conn, conn.begin():
                SQLModel.metadata.create_all(conn)
                for trigger in _TRIGGERS:
                    conn.exec_driver_sql(trigger)
                conn.execute(
                    text("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', :v)"),
                    {"v": str(models.SCHEMA_VERSION)},
                )

    @contextmanager
    def translated(self, doing: str = "") -> Iterator[None]:
        """The store's edge: a database error inside becomes the `StoreError` it means."""
        try:
            yield
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise store_error(exc, self.path, doing) from exc

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT) on one connection."""
        with self.translated(), self.engine.connect().execution_options(longrun_write=True) as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """One read transaction: a consistent snapshot across its statements."""
        with self.translated(), self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def orm(self, write: bool = False) -> Iterator[Session]:
        """One ORM unit of work, committed on success (for the paths that are not hot)."""
        with self.translated(), self.engine.connect().execution_options(longrun_write=write) as conn:
            with conn.begin():
                with Session(bind=conn, expire_on_commit=False) as session:
                    yield session
                    session.flush()

    def close(self) -> None:
        self.engine.dispose()
