"""Pinning the check harness in the store, and putting it back in the judge's tree.

`pin_harness` records a `harness_pinned` event for a checkpoint: the harness's paths and digests
(see `judging.harness`), read from longrun's mirror, never from the workspace. The judge restores
the latest pin in each tree it judges (`restore_harness`) and hands what differed to the ratchet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longrun.scheduler.judging import harness
from longrun.scheduler.judging.tree import JudgedTree
from longrun.scheduler.session import mirror
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log
from longrun.store.db import Store
from longrun.store.runs import CheckpointView, RunView

PINNED = "harness_pinned"


def pin_harness(
    store: Store, run: RunView, spec: RunSpec, cp: CheckpointView, *, by: str, why: str
) -> dict[str, Any] | None:
    """Pin the check harness at a checkpoint (when `[judge.harness] pin` is on); the event's data."""
    settings = spec.judge.harness
    if not settings.pin:
        return None
    home = store.home
    mirror.ensure_kept(home, Path(run.workspace), run.id, cp.commit)
    source = harness.Source(
        mirror.paths_at(home, cp.commit), lambda path: mirror.read_blob(home, cp.commit, path)
    )
    checks = [f.check for f in spec.features if f.check]
    pinned = harness.pin(source, checks, settings.include, settings.exclude)
    data = {"checkpoint_id": cp.id, "commit": cp.commit, "by": by, "why": why, **pinned}
    log.record(store, run.id, PINNED, data)
    return data


def latest_pin(store: Store, run_id: str) -> dict[str, Any] | None:
    event = log.latest_event(store, run_id, PINNED)
    return dict(event.data) if event is not None else None


def tree_source(tree: JudgedTree) -> harness.Source:
    return harness.Source(tree.files, lambda path: _read(tree.path, path))


def _read(root: Path, path: str) -> bytes | None:
    file = root / path
    try:
        return None if file.is_symlink() or not file.is_file() else file.read_bytes()
    except OSError:
        return None


def restore_harness(store: Store, tree: JudgedTree, pin: dict[str, Any]) -> dict[str, Any] | None:
    """Put the pinned harness back in the judge's tree; what differed (summary, paths, diff) or
    None when nothing did."""
    home, commit = store.home, str(pin["commit"])
    found = harness.changes(pin, tree_source(tree))
    if not found:
        return None
    shown = harness.diff(
        found, lambda path: mirror.read_blob(home, commit, path), lambda p: _read(tree.path, p)
    )
    for change in found:
        target = tree.path / change.path
        if change.pinned is None:
            target.unlink(missing_ok=True)
            continue
        data = mirror.read_blob(home, commit, change.path)
        if data is None:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_bytes(data)
    tree.restored = [c.path for c in found]
    return {
        "summary": harness.summary(found),
        "changes": [{"path": c.path, "how": c.how} for c in found],
        "diff": shown,
        "pinned_at": pin.get("checkpoint_id"),
    }
