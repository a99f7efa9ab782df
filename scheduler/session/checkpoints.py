"""Taking a checkpoint: a commit of the whole working tree beside the run's branch, under the run's own
ref, and its row; by the session itself and by whoever settles an end the session could not record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longrun.scheduler.session import workspace as ws
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.runs import CheckpointView, RunView, SessionView


def take_checkpoint(
    store: Store, run: RunView, session: SessionView | None, reason: str, handoff: dict[str, Any] | None
) -> CheckpointView:
    """Commit the workspace as it stands and record it as the run's new head checkpoint."""
    workspace = Path(run.workspace)
    current = runs.get_run(store, run.id)
    parent = runs.get_checkpoint(store, current.head_checkpoint_id) if current.head_checkpoint_id else None
    label = f"session {session.n}" if session else "no session"
    sha = ws.snapshot(workspace, f"longrun: checkpoint ({reason}, {label})", checkpoint_ref(run.id, None))
    ws.git(workspace, "update-ref", checkpoint_ref(run.id, sha), sha)
    commits = ws.commits_between(workspace, f"{parent.commit}^" if parent else None, f"{sha}^")
    return runs.add_checkpoint(
        store,
        run_id=run.id,
        session_id=session.id if session else None,
        commit=sha,
        reason=reason,
        handoff=handoff,
        commits=[c.to_json() for c in commits],
    )


def checkpoint_ref(run_id: str, sha: str | None) -> str:
    """Where a checkpoint's commit is kept (so git never collects it); `sha=None` names the newest."""
    return f"refs/longrun/{run_id}/checkpoints/{sha or 'head'}"
