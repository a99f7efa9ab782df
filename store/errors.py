"""One error hierarchy for longrun.

Every error a user can cause is a `LongrunError` with a one-line message that names what is
wrong and where. The CLI and the UI show any of them in one place, never a traceback.
Database errors are turned into these at the store's edge.
"""

from __future__ import annotations


class LongrunError(Exception):
    """Base of every error longrun reports to a person."""

    title = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(LongrunError):
    """A run spec (TOML) that cannot be read or does not validate."""

    title = "bad spec"


class ScriptError(LongrunError):
    """A scripted-model script that cannot be read or does not validate."""

    title = "bad script"


class StoreError(LongrunError):
    """The store cannot be opened or used."""

    title = "store"


class StoreVersionError(StoreError):
    """The store was written by a newer longrun than this one."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than the busy timeout."""


class StoreConflict(StoreError):
    """A write the store's constraints refuse (a duplicate, a missing parent, the append-only log)."""


class StoreReadOnly(StoreError):
    """The store's file or directory cannot be written by this process."""


class StoreCorrupt(StoreError):
    """The store's file is not a database, or not a whole one."""


class RunNotFound(LongrunError):
    """No run matches the id or name given."""

    title = "unknown run"


class SessionNotFound(LongrunError):
    """No session has the id given."""

    title = "unknown session"


class CheckpointNotFound(LongrunError):
    """No checkpoint of the run has the id given."""

    title = "unknown checkpoint"


class ApprovalNotFound(LongrunError):
    """No approval has the id given."""

    title = "unknown approval"


class InvalidTransition(LongrunError):
    """A control verb that the run's current state does not allow."""

    title = "not now"


class WorkspaceError(LongrunError):
    """The workspace cannot be created, read or committed to."""

    title = "workspace"


class BudgetExhausted(LongrunError):
    """A model call would cross a hard budget cap."""

    title = "budget"

    def __init__(self, message: str, cap: str | None = None) -> None:
        super().__init__(message)
        self.cap = cap
