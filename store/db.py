"""Opening the store: where it lives, the engine and its pragmas, the schema and its version.

Nothing here opens a database at import time. `Store` is the handle every other part is given.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

from longrun.store import anchors, migrations, models
from longrun.store.errors import (
    StoreBusy,
    StoreConflict,
    StoreCorrupt,
    StoreError,
    StoreReadOnly,
    StoreVersionError,
)

DB_NAME = "longrun.db"
BACKUPS_DIR = "backups"
BUSY_TIMEOUT_MS = 15_000


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
        _set_pragmas(dbapi_conn, read_only=read_only)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("longrun_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class _HotConnection(sqlite3.Connection):
    """A sqlite3 connection that a weak set can hold (the base class takes no weak references)."""


def _set_pragmas(conn: sqlite3.Connection, *, read_only: bool) -> None:
    """What every connection to a store runs first: WAL and a full sync on every commit (or
    query-only), the busy timeout, foreign keys."""
    cur = conn.cursor()
    if read_only:
        cur.execute("PRAGMA query_only=ON")
    else:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


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

    _hot: threading.local = field(init=False, repr=False, default_factory=threading.local)
    _hot_all: weakref.WeakSet[sqlite3.Connection] = field(
        init=False, repr=False, default_factory=weakref.WeakSet
    )
    """Every thread's hot connection, to close with the store; one whose thread has ended is
    dropped with the thread's locals, and closes as it goes."""
    _hot_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

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

    def _older(self, found: int) -> StoreVersionError:
        return StoreVersionError(
            f"{self.path}: at schema {found}, and this longrun needs {models.SCHEMA_VERSION}: "
            "run `longrun init --upgrade` to bring it up to date (it backs the store up first)"
        )

    def _check_and_init(self) -> None:
        with self.translated("cannot open the store"):
            found = self._found_version()
            if found > models.SCHEMA_VERSION:
                raise self._newer(found)
            if found == models.SCHEMA_VERSION:
                return
            if found > 0:
                raise self._older(found)
            with self.engine.connect().execution_options(longrun_write=True) as conn, conn.begin():
                if _schema_version(conn) == 0:  # not made by another process while this one waited
                    migrations.upgrade(conn, 0)

    @classmethod
    def upgrade(cls, home: Path | str | None = None) -> tuple[int, int, Path | None]:
        """Bring the store in `home` up to this longrun's schema, after a copy of it is kept in
        `backups/` beside it; returns (the version it was at, the version it is at, the copy).

        Every revision it lacks runs in one write transaction, so a failure leaves it as it was.
        A store already up to date is left alone; a newer one is refused.
        """
        home_path = Path(home).expanduser() if home is not None else default_home()
        db = home_path / DB_NAME
        if not db.exists():
            raise StoreError(f"{home_path}: no longrun store here (run `longrun init` first)")
        why = read_only_reason(home_path, db)
        if why is not None:
            raise StoreReadOnly(f"{home_path}: the store is read-only ({why}): it cannot be upgraded")
        store = cls(home=home_path, engine=make_engine(db))
        try:
            with store.translated("cannot upgrade the store"):
                found = store._found_version()
                if found > models.SCHEMA_VERSION:
                    raise store._newer(found)
                if found == models.SCHEMA_VERSION:
                    return found, found, None
                backup = store._back_up(found)
                with store.engine.connect().execution_options(longrun_write=True) as conn, conn.begin():
                    found_now = _schema_version(conn)
                    migrations.upgrade(conn, found_now)
                    rows = conn.exec_driver_sql("SELECT run_id, events, hash FROM chain_head").all()
            store.anchor_writer.record({r[0]: (int(r[1]), r[2]) for r in rows})
            return found, models.SCHEMA_VERSION, backup
        finally:
            store.close()

    def _back_up(self, version: int) -> Path:
        """A whole copy of the store, made with SQLite's online backup, in `backups/`."""
        folder = self.home / BACKUPS_DIR
        folder.mkdir(exist_ok=True)
        stamp = models.utcnow().strftime("%Y%m%dT%H%M%SZ")
        target = folder / f"longrun-schema{version}-{stamp}.db"
        with closing(sqlite3.connect(self.path)) as source, closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
        return target

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
    def hot(self) -> Iterator[tuple[sqlite3.Connection, dict[str, tuple[int, str]]]]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT) on this thread's own sqlite3
        connection, kept open for the store's life, for the hottest path (one event appended):
        no pool, no SQLAlchemy transaction. Yields the connection and a dict of the heads it
        moved (run id → events, hash), which are anchored once it has committed."""
        self._refuse_writes()
        heads: dict[str, tuple[int, str]] = {}
        with self.translated():
            raw = self.hot_connection()
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield raw, heads
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
        if heads:
            self.anchor_writer.record(heads)

    def hot_connection(self) -> sqlite3.Connection:
        """This thread's own sqlite3 connection to the store (see `hot`); a single statement run
        on it outside `hot` runs in autocommit."""
        raw: sqlite3.Connection | None = getattr(self._hot, "connection", None)
        if raw is None:
            raw = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
                factory=_HotConnection,
            )
            _set_pragmas(raw, read_only=False)
            self._hot.connection = raw
            with self._hot_lock:
                self._hot_all.add(raw)
        return raw

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
        with self._hot_lock:
            for raw in list(self._hot_all):
                raw.close()
            self._hot_all.clear()
        self._hot = threading.local()
        self.engine.dispose()
        self.anchor_writer.close()


def _schema_version(conn: Connection) -> int:
    """The schema version the file says it is at (0: no schema yet)."""
    if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").first():
        return 0
    row = conn.exec_driver_sql("SELECT value FROM meta WHERE key='schema_version'").first()
    return int(row[0]) if row else 0
