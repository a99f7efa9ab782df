"""Alembic's environment for the store: migrations run on the connection `longrun.store.migrations`
hands over, inside the write transaction it has begun (never one of Alembic's own)."""

from __future__ import annotations

from typing import Any

from alembic import context


def run(connection: Any) -> None:
    context.configure(connection=connection, render_as_batch=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


if not __name__.startswith("longrun."):  # loaded by Alembic from its path, not imported as a module
    run(context.config.attributes["connection"])
