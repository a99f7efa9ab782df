"""Fixtures of the Pilot tests: the async backend, and a run with real sessions behind it."""

from __future__ import annotations

from typing import Any

import pytest
from driving import TWO_SESSIONS

from longrun.scheduler.control import create_run_from_file, run_session_now
from longrun.store import runs
from longrun.store.db import Store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def two_sessions(store: Store, write_spec: Any) -> tuple[str, int, int]:
    """A run with two real sessions behind it: (run id, session 1's last checkpoint, the head)."""
    run = create_run_from_file(store, write_spec(TWO_SESSIONS))
    run_session_now(store, run.id)
    run_session_now(store, run.id)
    first = [s for s in runs.list_sessions(store, run.id) if s.n == 1][0]
    checkpoint = [c.id for c in runs.list_checkpoints(store, run.id) if c.session_id == first.id][-1]
    return run.id, checkpoint, runs.get_run(store, run.id).head_checkpoint_id or 0
