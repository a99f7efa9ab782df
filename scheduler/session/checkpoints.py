"""Taking a checkpoint: a commit of the whole working tree beside the run's branch, under the run's own
ref, kept in longrun's mirror too, and its row; by the session itself and by whoever settles an end
the session could not record. Each one first compares the workspace's checkpoint refs with the
mirror's: a deleted or moved one is put back and recorded as a `tamper` event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longrun.scheduler.session import mirror
from longrun.scheduler.session import workspace as ws
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.runs import CheckpointView, RunView, SessionView


def take_checkpoint(
    store: Store, run: RunView, session: SessionView | None, reason: str, handoff: dict[str, Any] | None
) -> CheckpointView:
    """Commit the workspace as it stands and record it as the run's new head checkpoint."""
    workspace = Path(run.workspace)
    parent_commit = runs.head_commit(store, run.id)
    label = f"session {session.n}" if session else "no session"
    tampered = mirror.check_refs(store.home, workspace, run.id)
    sha = ws.snapshot(workspace, f"longrun: checkpoint ({reason}, {label})", checkpoint_ref(run.id, None))
    ws.git(workspace, "update-ref", checkpoint_ref(run.id, sha), sha)
    mirror.keep(store.home, workspace, run.id, sha)
    commits = ws.commits_between(workspace, f"{parent_commit}^" if parent_commit else None, f"{sha}^")
    cp = runs.add_checkpoint(
        store,
        run_id=run.id,
        session_id=session.id if session else None,
        commit=sha,
        reason=reason,
        handoff=handoff,
        commits=[c.to_json() for c in commits],
    )
    if tampered:
        more = f"; and {len(tampered) - 3} more" if len(tampered) > 3 else ""
        shown = "; ".join(c.line for c in tampered[:3]) + more
        log.record(
            store,
            run.id,
            "tamper",
            {
                "checkpoint_id": cp.id,
                "refs": [c.to_json() for c in tampered],
                "detail": f"longrun's checkpoint refs were changed in the workspace: {shown}; "
                "put back from longrun's mirror",
            },
            session_id=session.id if session else None,
        )
    return cp


def checkpoint_ref(run_id: str, sha: str | None) -> str:
    """Where a checkpoint's commit is kept (so git never collects it); `sha=None` names the newest."""
    return f"refs/longrun/{run_id}/checkpoints/{sha or 'head'}"
