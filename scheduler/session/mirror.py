"""longrun's own copy of every checkpoint: a bare repository under the store's home.

The workspace is the worker's: it can delete `refs/longrun/*`, rewrite them, expire its reflog and
prune the objects. So every checkpoint commit is also pushed to `checkpoints.git` in longrun's
home, kept there under the same ref, and everything that must not be fooled reads it from there:
the judge checks out its trees from the mirror, and rewind, fork and resume fetch a checkpoint
back into the workspace when the workspace lost it. At every checkpoint the workspace's refs are
compared with the mirror's; a deleted or moved one is put back and reported as tampering.

Git runs here with hooks, the file-system monitor and replace refs off, whatever the workspace's
configuration says: each is a way for a worker to run code in longrun's process or to swap what a
commit holds.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from longrun.store.errors import WorkspaceError

MIRROR_DIR = "checkpoints.git"
SAFE_GIT = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.file.allow=always",
)
"""Options every git call of longrun's makes: no hooks, no file-system monitor, local fetches allowed."""


def git_env() -> dict[str, str]:
    """The environment longrun runs git with: none of the caller's GIT_* settings, no prompt, and
    replace refs ignored (a worker's `git replace` must not change what a checkpoint holds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    return env


def mirror_path(home: Path) -> Path:
    return Path(home) / MIRROR_DIR


def _git(cwd: Path | None, *args: str, check: bool = True, git_dir: Path | None = None) -> str:
    prefix = ["--git-dir", str(git_dir)] if git_dir is not None else []
    try:
        proc = subprocess.run(
            ["git", *SAFE_GIT, *prefix, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=git_env(),
            timeout=300,
        )
    except FileNotFoundError:
        raise WorkspaceError("git is not installed (longrun keeps checkpoints as git commits)") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"git {args[0]} took longer than 300s") from None
    if check and proc.returncode != 0:
        reason = (proc.stderr or proc.stdout).strip().splitlines()
        where = git_dir or cwd
        raise WorkspaceError(f"{where}: git {args[0]} failed: {reason[-1] if reason else proc.returncode}")
    return proc.stdout.strip()


def mgit(home: Path, *args: str, check: bool = True) -> str:
    """Run git on the mirror (made when missing)."""
    return _git(None, *args, check=check, git_dir=ensure(home))


def ensure(home: Path) -> Path:
    """The mirror, made when it is missing."""
    path = mirror_path(home)
    if not (path / "HEAD").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _git(None, "init", "-q", "--bare", str(path))
        _git(None, "config", "core.logAllRefUpdates", "false", git_dir=path)
    return path


def ref_for(run_id: str, sha: str) -> str:
    return f"refs/longrun/{run_id}/checkpoints/{sha}"


def has_commit(home: Path, sha: str) -> bool:
    return bool(mgit(home, "rev-parse", "--verify", "-q", f"{sha}^{{commit}}", check=False))


def keep(home: Path, workspace: Path, run_id: str, sha: str) -> None:
    """Push a checkpoint commit (and what it reaches) from the workspace into the mirror."""
    mirror = ensure(home)
    _git(workspace, "push", "-q", "--no-verify", str(mirror), f"+{sha}:{ref_for(run_id, sha)}")


def ensure_kept(home: Path, workspace: Path, run_id: str, sha: str) -> None:
    """Make sure the mirror holds a checkpoint; one taken before the mirror existed is copied in
    from the workspace, when the workspace still has it."""
    if has_commit(home, sha):
        return
    in_workspace = _git(workspace, "rev-parse", "--verify", "-q", f"{sha}^{{commit}}", check=False)
    if not in_workspace:
        raise WorkspaceError(
            f"checkpoint commit {sha[:12]} is in neither longrun's mirror nor the workspace {workspace}"
        )
    keep(home, workspace, run_id, sha)


def bring_back(home: Path, workspace: Path, run_id: str, sha: str) -> bool:
    """Make sure the workspace has a checkpoint commit, fetching it from the mirror when the
    workspace lost it; True when it had to be fetched."""
    if _git(workspace, "rev-parse", "--verify", "-q", f"{sha}^{{commit}}", check=False):
        return False
    ref = _mirror_ref(home, sha) or ref_for(run_id, sha)
    if not has_commit(home, sha):
        raise WorkspaceError(
            f"checkpoint commit {sha[:12]} is gone from the workspace and from longrun's mirror"
        )
    _git(workspace, "fetch", "-q", "--no-tags", str(mirror_path(home)), f"+{ref}:{ref}")
    return True


def _mirror_ref(home: Path, sha: str) -> str | None:
    """A mirror ref that names `sha` (any run's: a fork's first commits are its parent's)."""
    out = mgit(home, "for-each-ref", "--format=%(objectname) %(refname)", "refs/longrun/")
    for line in out.splitlines():
        name_sha, _, ref = line.partition(" ")
        if name_sha == sha:
            return ref
    return None


@dataclass(frozen=True)
class RefChange:
    """A longrun ref the workspace no longer has as the mirror has it."""

    ref: str
    expected: str
    found: str | None
    """None: deleted."""

    @property
    def line(self) -> str:
        how = "deleted" if self.found is None else f"moved to {self.found[:12]}"
        return f"{self.ref} {how} (was {self.expected[:12]})"

    def to_json(self) -> dict[str, str | None]:
        return {"ref": self.ref, "expected": self.expected, "found": self.found}


def _refs(out: str) -> dict[str, str]:
    found = {}
    for line in out.splitlines():
        sha, _, ref = line.partition(" ")
        if ref:
            found[ref] = sha
    return found


def check_refs(home: Path, workspace: Path, run_id: str) -> list[RefChange]:
    """Compare the run's checkpoint refs in the workspace with the mirror's, put back any that were
    deleted or moved (fetching what was pruned), and return what was changed."""
    prefix = f"refs/longrun/{run_id}/checkpoints/"
    fmt = "--format=%(objectname) %(refname)"
    kept = _refs(mgit(home, "for-each-ref", fmt, prefix))
    if not kept:
        return []
    there = _refs(_git(workspace, "for-each-ref", fmt, prefix))
    changes = [
        RefChange(ref, sha, there.get(ref)) for ref, sha in sorted(kept.items()) if there.get(ref) != sha
    ]
    if changes:
        spec = [f"+{c.ref}:{c.ref}" for c in changes]
        _git(workspace, "fetch", "-q", "--no-tags", str(mirror_path(home)), *spec)
    return changes


def read_blob(home: Path, commit: str, path: str) -> bytes | None:
    """A file's bytes at a commit of the mirror; None when the commit has no such file."""
    proc = subprocess.run(
        ["git", *SAFE_GIT, "--git-dir", str(ensure(home)), "cat-file", "blob", f"{commit}:{path}"],
        capture_output=True,
        env=git_env(),
        timeout=120,
    )
    return proc.stdout if proc.returncode == 0 else None


def paths_at(home: Path, commit: str) -> frozenset[str]:
    """Every file path of a commit of the mirror."""
    out = mgit(home, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit)
    return frozenset(p for p in out.split("\0") if p)


def repository_with(home: Path, workspace: Path, run_id: str, *shas: str) -> Path:
    """Where to read commits from: the mirror when it holds them all (copying in from the
    workspace what it lacks), else the workspace (a store from before the mirror)."""
    try:
        for sha in shas:
            ensure_kept(home, workspace, run_id, sha)
    except WorkspaceError:
        return workspace
    return mirror_path(home)
