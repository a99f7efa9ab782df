"""What the dashboard asks of a run's git history: a checkpoint's diff against its parent."""

from __future__ import annotations

from pathlib import Path

from longrun.scheduler.session import mirror
from longrun.scheduler.session import workspace as ws
from longrun.store import runs
from longrun.store.db import Store

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""Git's empty tree: what a run's first checkpoint is compared with."""


def checkpoint_diff(store: Store, ref: str, checkpoint_id: int, limit: int = 200_000) -> tuple[str, bool]:
    """The diff of a checkpoint against its parent (a stat, then the patch), and whether it was cut."""
    run = runs.get_run(store, ref)
    checkpoint = runs.get_checkpoint(store, checkpoint_id, run.id)
    base = runs.get_checkpoint(store, checkpoint.parent_id).commit if checkpoint.parent_id else EMPTY_TREE
    if base == checkpoint.commit:
        return "", False
    shas = [checkpoint.commit] + ([base] if base != EMPTY_TREE else [])
    repo = mirror.repository_with(store.home, Path(run.workspace), run.id, *shas)
    return ws.diff(repo, base, checkpoint.commit, limit)
