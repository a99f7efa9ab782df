"""Opening the store: where it lives, the engine and its pragmas, the schema and its version.

Nothing here opens a database at import time. `Store` is the handle every other part is given.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, SQLModel

from longrun.store import anchors, models
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


def _refuse(name: str, when: str, event_: str, message: str) -> tuple[str, str]:
    condition = f" WHEN {when}" if when else ""
    return name, (
        f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event_}{condition} "
        "BEGIN SELECT RAISE(ABORT, '" + message.replace("'", "''") + "'); END"
    )


def _changed(*columns: str) -> str:
    return " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in columns)


def _lowered(*columns: str) -> str:
    return " OR ".join(f'NEW."{c}" < OLD."{c}"' for c in columns)


_TOTALS = ("spent_usd", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")

GUARDS: tuple[tuple[str, str], ...] = (
    _refuse(
        "event_append_only_update", "", "UPDATE ON event", "the event log is append-only: UPDATE refused"
    ),
    _refuse(
        "event_append_only_delete", "", "DELETE ON event", "the event log is append-only: DELETE refused"
    ),
    _refuse(
        "chain_head_forward_only",
        f"{_changed('run_id', 'exact_from')} OR NEW.events < OLD.events "
        "OR (NEW.events = OLD.events AND NEW.hash IS NOT OLD.hash)",
        "UPDATE ON chain_head",
        "a chain head only moves forward: UPDATE refused",
    ),
    _refuse("chain_head_kept", "", "DELETE ON chain_head", "a chain head is never deleted: DELETE refused"),
    _refuse(
        "run_fixed",
        f"{_changed('id', 'name', 'goal', 'workspace', 'branch', 'spec_path', 'parent_run_id', 'created_at')}"
        f" OR {_lowered(*_TOTALS)}",
        "UPDATE ON run",
        "a run keeps its identity and its spend only grows: UPDATE refused",
    ),
    _refuse("run_kept", "", "DELETE ON run", "a run is never deleted: DELETE refused"),
    _refuse(
        "session_fixed",
        f"{_changed('id', 'run_id', 'n', 'created_at', 'deadline_at', 'wrap_up_at', 'from_checkpoint_id')}"
        f" OR (OLD.ended_at IS NOT NULL AND ({_changed('state', 'ended_at', 'end_reason')}))"
        f" OR {_lowered(*_TOTALS)}",
        "UPDATE ON session",
        "a session keeps its time box and its end once recorded: UPDATE refused",
    ),
    _refuse("session_kept", "", "DELETE ON session", "a session is never deleted: DELETE refused"),
    _refuse(
        "checkpoint_fixed",
        _changed(
            "id",
            "run_id",
            "session_id",
            "parent_id",
            "seq",
            "commit",
            "reason",
            "handoff_json",
            "commits_json",
            "spent_usd",
            "tokens",
            "created_at",
        ),
        "UPDATE ON checkpoint",
        "a checkpoint changes only its feature status: UPDATE refused",
    ),
    _refuse("checkpoint_kept", "", "DELETE ON checkpoint", "a checkpoint is never deleted: DELETE refused"),
    _refuse("verdict_fixed", "", "UPDATE ON verdict", "a verdict is never changed: UPDATE refused"),
    _refuse("verdict_kept", "", "DELETE ON verdict", "a verdict is never deleted: DELETE refused"),
    _refuse(
        "approval_fixed",
        f"OLD.state IS NOT 'pending' OR "
        f"{_changed('id', 'run_id', 'session_id', 'kind', 'request_json', 'requested_at', 'expires_at')}",
        "UPDATE ON approval",
        "an approval is decided once and its request never changes: UPDATE refused",
    ),
    _refuse("approval_kept", "", "DELETE ON approval", "an approval is never deleted: DELETE refused"),
    _refuse(
        "conversation_fixed",
        f"{_changed('id', 'run_id', 'session_id', 'checkpoint_id', 'reason', 'messages_json', 'created_at')}"
        " OR (OLD.resumed_by IS NOT NULL AND NEW.resumed_by IS NOT OLD.resumed_by)",
        "UPDATE ON conversation",
        "a kept conversation never changes: UPDATE refused",
    ),
    _refuse(
        "conversation_kept",
        "",
        "DELETE ON conversation",
        "a kept conversation is never deleted: DELETE refused",
    ),
    _refuse(
        "spend_day_forward_only",
        f"{_changed('run_id', 'day')} OR {_lowered(*_TOTALS)}",
        "UPDATE ON spend_day",
        "a day's spend only grows: UPDATE refused",
    ),
    _refuse("spend_day_kept", "", "DELETE ON spend_day", "a day's spend is never deleted: DELETE refused"),
)
"""The triggers that refuse every UPDATE and DELETE no code path makes, by name. Someone with
the file can drop them; `longrun verify` says so, and the rows they guard are checked against
the log anyway."""


def default_home() -> Path:
    """`$LONGRUN_HOME`, else the platform's user data directory for longrun."""
    env = os.environ.get("LONGRUN_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("longrun"))


def make_engine(path: Path | str, *, read_only: bool = False, immutable: bool = False) -> Engine:
    """An engine on the SQLite file at `path` with WAL, a busy timeout and foreign keys on every connection.

    Transactions are begun by us, not by the sqlite3 module: plain `BEGIN` for reads, and
    `BEGIN IMMEDIATE` on connections with the `longrun_write` execution option, so that a writer
    takes the write lock up front instead of failing halfway with SQLITE_BUSY.

    `read_only` opens the file with `mode=ro` (a store this process cannot write); `immutable`
    also tells SQLite that nobody writes it, so that it needs no `-shm` file beside it (which a
    read-only folder cannot hold).
    """
    if read_only:
        uri = Path(path).resolve().as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
        engine = create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            ),
            poolclass=QueuePool,
        )
    else:
        engine = create_engine(
            f"sqlite:///{path}",
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if read_only:
            cur.execute("PRAGMA query_only=ON")
        else:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
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
    ("SQLITE_READONLY", StoreReadOnly, "the store is read-only: this process cannot write it"),
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


def read_only_reason(home: Path, db: Path) -> str | None:
    """Why this process cannot write the store in `home` (None when it can)."""
    try:
        if os.statvfs(home).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        pass
    if db.exists() and not os.access(db, os.W_OK):
        return f"{db.name} cannot be written by this user"
    if not os.access(home, os.W_OK):
        return "its folder cannot be written by this user"
    return None


@dataclass
class Store:
    """An open store: its home directory and an engine over it.

    `read_only` says why the store cannot be written (None when it can): a store on a read-only
    file system, or one this user may only read, is opened for reading; every write is refused
    with a `StoreReadOnly` naming the reason. `schema` is the version the file is at (an older
    store opened read-only cannot be brought up to date).
    """

    home: Path
    engine: Engine
    read_only: str | None = None
    schema: int = models.SCHEMA_VERSION
    anchor_writer: anchors.AnchorWriter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.anchor_writer = anchors.AnchorWriter(self.home)

    @property
    def path(self) -> Path:
        return self.home / DB_NAME

    @classmethod
    def open(cls, home: Path | str | None = None, *, create: bool = True) -> Store:
        """Open (and, when `create`, initialise) the store in `home`; read-only when it cannot be written.

        A store written by a newer schema is refused with a clear message, never migrated down;
        an older one is migrated up when it can be written.
        """
        home_path = Path(home).expanduser() if home is not None else default_home()
        db = home_path / DB_NAME
        if not db.exists():
            if not create:
                raise StoreError(f"{home_path}: no longrun store here (run `longrun init` first)")
            try:
                home_path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise StoreReadOnly(
                        f"{home_path}: the store is read-only ({exc.strerror}): no store can be created here"
                    ) from None
                raise StoreError(f"{home_path}: cannot create the store directory: {exc.strerror}") from None
        why = read_only_reason(home_path, db)
        if why is None:
            store = cls(home=home_path, engine=make_engine(db))
            try:
                store._check_and_init()
                return store
            except StoreReadOnly:
                store.close()
                why = "SQLite cannot write it"
            except StoreError:
                store.close()
                raise
        if not db.exists():
            raise StoreReadOnly(f"{home_path}: the store is read-only ({why}): no store can be created here")
        return cls._open_read_only(home_path, db, why)

    @classmethod
    def _open_read_only(cls, home: Path, db: Path, why: str) -> Store:
        wal, shm = db.with_name(f"{db.name}-wal"), db.with_name(f"{db.name}-shm")
        if wal.exists() and wal.stat().st_size > 0 and not shm.exists():
            raise StoreReadOnly(
                f"{home}: the store is read-only ({why}) and its write-ahead log {wal.name} holds "
                f"changes not yet in {db.name}: open it once where it can be written"
            )
        immutable = not (wal.exists() and shm.exists())
        store = cls(home=home, engine=make_engine(db, read_only=True, immutable=immutable), read_only=why)
        try:
            with store.translated(f"the store is read-only ({why}) and cannot be read"):
                found = store._found_version()
        except StoreError as exc:
            store.close()
            raise StoreReadOnly(exc.message) from None
        if found == 0:
            store.close()
            raise StoreReadOnly(f"{home}: the store is read-only ({why}) and was never initialised")
        if found > models.SCHEMA_VERSION:
            store.close()
            raise store._newer(found)
        store.schema = found
        return store

    def _found_version(self) -> int:
        with self.engine.connect() as conn:
            return _schema_version(conn)

    def _newer(self, found: int) -> StoreVersionError:
        return StoreVersionError(
            f"{self.path}: written by a newer longrun (schema {found}; this one reads up "
            f"to {models.SCHEMA_VERSION}): upgrade longrun to open it"
        )

    def _check_and_init(self) -> None:
        with self.translated("cannot open the store"):
            found = self._found_version()
            if found > models.SCHEMA_VERSION:
                raise self._newer(found)
            if found == models.SCHEMA_VERSION:
                return
            with self.engine.connect().execution_options(longrun_write=True) as conn, conn.begin():
                heads = migrate(conn)
        self.anchor_writer.record(heads)

    def _refuse_writes(self) -> None:
        if self.read_only is not None:
            raise StoreReadOnly(
                f"{self.home}: the store is read-only ({self.read_only}): it cannot be written"
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
        """One write transaction (BEGIN IMMEDIATE … COMMIT) on one connection; the heads of the runs
        it appended to are anchored once it has committed."""
        self._refuse_writes()
        with self.translated(), self.engine.connect().execution_options(longrun_write=True) as conn:
            conn.info.pop(anchors.PENDING, None)
            with conn.begin():
                yield conn
            self._anchor(conn)

    @contextmanager
    def raw_writing(self) -> Iterator[Connection]:
        """`writing` for a hot path whose statements all go to the driver's connection
        (`conn.connection.driver_connection`, and `log.append`): the same BEGIN IMMEDIATE … COMMIT
        and anchoring, issued on the driver, without SQLAlchemy's transaction, whose events and
        bookkeeping cost more than a small write's own statements. Nothing inside may execute
        through SQLAlchemy (that would begin a second transaction)."""
        self._refuse_writes()
        with self.translated(), self.engine.connect() as conn:
            conn.info.pop(anchors.PENDING, None)
            raw = conn.connection.driver_connection
            assert raw is not None, "a connection checked out has its driver's connection"
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            self._anchor(conn)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """One read transaction: a consistent snapshot across its statements."""
        with self.translated(), self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def orm(self, write: bool = False) -> Iterator[Session]:
        """One ORM unit of work, committed on success (for the paths that are not hot)."""
        if write:
            self._refuse_writes()
        with self.translated(), self.engine.connect().execution_options(longrun_write=write) as conn:
            conn.info.pop(anchors.PENDING, None)
            with conn.begin():
                with Session(bind=conn, expire_on_commit=False) as session:
                    yield session
                    session.flush()
            self._anchor(conn)

    def _anchor(self, conn: Connection) -> None:
        heads = conn.info.pop(anchors.PENDING, None)
        if heads:
            self.anchor_writer.record(heads)

    def close(self) -> None:
        self.engine.dispose()
        self.anchor_writer.close()


def _schema_version(conn: Connection) -> int:
    """The schema version the file says it is at (0: no schema yet)."""
    if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").first():
        return 0
    row = conn.exec_driver_sql("SELECT value FROM meta WHERE key='schema_version'").first()
    return int(row[0]) if row else 0


def migrate(conn: Connection) -> dict[str, tuple[int, str]]:
    """Bring the schema up to `SCHEMA_VERSION` in the caller's write transaction (a no-op when it
    is there already); returns the heads to anchor.

    Missing tables are created (2: conversation; 3: chain_head), the guard triggers are made,
    and each run's head is taken from its log as it stands; `exact_from` marks where rows begin
    to carry their event's time exactly.
    """
    if _schema_version(conn) >= models.SCHEMA_VERSION:
        return {}  # another process brought it up while this one waited for the lock
    SQLModel.metadata.create_all(conn)
    for _name, trigger in GUARDS:
        conn.exec_driver_sql(trigger)
    conn.exec_driver_sql(
        "INSERT OR IGNORE INTO chain_head (run_id, events, hash, exact_from) "
        "SELECT e.run_id, e.seq, e.hash, e.seq + 1 FROM (SELECT run_id, max(seq) AS seq FROM event "
        "GROUP BY run_id) h JOIN event e ON e.run_id = h.run_id AND e.seq = h.seq"
    )
    conn.execute(
        text("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', :v)"),
        {"v": str(models.SCHEMA_VERSION)},
    )
    rows = conn.exec_driver_sql("SELECT run_id, events, hash FROM chain_head").all()
    return {r[0]: (int(r[1]), r[2]) for r in rows}
