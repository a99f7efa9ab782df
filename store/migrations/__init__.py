"""The store's schema history as Alembic revisions, one a schema version: `0001` (the first
tables), `0002` (conversation), `0003` (chain_head and the guard triggers).

A new store is made by running them all. An older store is never brought up to date by opening
it: `longrun init --upgrade` backs it up, then runs what it lacks (`Store.upgrade`). A store made
before the history was kept in Alembic (one with a schema version but no `alembic_version`) is
first stamped at the revision of its version. Alembic is imported only here, when a store is made
or upgraded, never on the path that opens one.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection

FOLDER = Path(__file__).parent


def revision_of(version: int) -> str:
    """The revision that brings a store to schema `version`."""
    return f"{version:04d}"


def upgrade(conn: Connection, found: int) -> None:
    """Run every revision after schema `found` (0: an empty file) on `conn`, in the write
    transaction the caller has begun (a failure rolls all of them back)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(FOLDER).replace("%", "%%"))
    config.attributes["connection"] = conn
    if found and not _has_history(conn):
        command.stamp(config, revision_of(found))
    command.upgrade(config, "head")


def _has_history(conn: Connection) -> bool:
    return (
        conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).first()
        is not None
    )


def never_down() -> None:
    """Every revision's downgrade: a store is never migrated down."""
    raise NotImplementedError(
        "a store is never migrated down: put back the copy `longrun init --upgrade` kept"
    )
