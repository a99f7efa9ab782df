"""The run's workspace: a git working tree on the run's own branch; checkpoints are its commits."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from longrun.scheduler.session.mirror import SAFE_GIT, git_env
from longrun.store.errors import WorkspaceError

AGENT_NAME = "longrun agent"
AGENT_EMAIL = "agent@longrun.invalid"
PRIVATE_DIR = ".longrun"
"""Files longrun writes into the workspace for the worker; never part of a checkpoint commit."""


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str

    def to_json(self) -> dict[str, str]:
        return {"sha": self.sha, "subject": self.subject}


def git(workspace: Path | str, *args: str, check: bool = True) -> str:
    """Run git in the workspace and return its stdout; a failure is a one-line WorkspaceError."""
    try:
        proc = subprocess.run(
            ["git", *SAFE_GIT, *args],
            cwd=workspace,
            capture_output=True,
            text=True,
            env=git_env(),
            timeout=120,
        )
    except FileNotFoundError:
        raise WorkspaceError("git is not installed (longrun keeps checkpoints as git commits)") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"{workspace}: git {args[0]} took longer than 120s") from None
    if check and proc.returncode != 0:
        reason = (proc.stderr or proc.stdout).strip().splitlines()
        raise WorkspaceError(
            f"{workspace}: git {args[0]} failed: {reason[-1] if reason else proc.returncode}"
        )
    return proc.stdout.strip()


def branch_name(run_id: str) -> str:
    return f"longrun/{run_id}"


def init_workspace(workspace: Path, branch: str) -> str:
    """Make `workspace` a git repository on `branch` (creating what is missing); return its HEAD commit.

    An existing repository keeps its history: the run's branch starts at its current HEAD.
    """
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(f"{workspace}: cannot create the workspace: {exc.strerror}") from None
    if not os.access(workspace, os.W_OK | os.X_OK):
        raise WorkspaceError(f"{workspace}: the workspace is not writable")
    if not (workspace / ".git").exists():
        git(workspace, "init", "-q", "-b", branch)
    _ensure_identity(workspace)
    _exclude_private_dir(workspace)
    has_head = git(workspace, "rev-parse", "--verify", "-q", "HEAD", check=False)
    if not has_head:
        git(workspace, "add", "-A")
        git(workspace, "commit", "-q", "--allow-empty", "-m", "longrun: initial state of the workspace")
    current = git(workspace, "rev-parse", "--abbrev-ref", "HEAD")
    if current != branch:
        exists = git(workspace, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False)
        if exists:
            git(workspace, "checkout", "-q", branch)
        else:
            git(workspace, "checkout", "-q", "-b", branch)
    return git(workspace, "rev-parse", "HEAD")


def _ensure_identity(workspace: Path) -> None:
    """Give the repository a committer identity when none is configured, so commits never fail."""
    if not git(workspace, "config", "user.email", check=False):
        git(workspace, "config", "user.email", AGENT_EMAIL)
    if not git(workspace, "config", "user.name", check=False):
        git(workspace, "config", "user.name", AGENT_NAME)


def _exclude_private_dir(workspace: Path) -> None:
    exclude = git_path(workspace, "info/exclude")
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text() if exclude.exists() else ""
    if f"/{PRIVATE_DIR}/" not in existing.splitlines():
        exclude.write_text(
            existing + ("" if existing.endswith("\n") or not existing else "\n") + f"/{PRIVATE_DIR}/\n"
        )


def git_path(workspace: Path, name: str) -> Path:
    """Where the repository keeps `name` (its own .git folder, or a worktree's)."""
    return (workspace / git(workspace, "rev-parse", "--git-path", name)).resolve()


def head(workspace: Path) -> str:
    return git(workspace, "rev-parse", "HEAD")


def snapshot(workspace: Path, message: str, ref: str) -> str:
    """Commit the working tree as it stands, without touching the branch, the index or the files.

    The commit's parent is the agent's HEAD, so the agent's own history and its uncommitted work
    are left exactly as they were; the commit is kept alive under `ref`.
    """
    index = git_path(workspace, f"longrun-index-{os.getpid()}")
    env_index = {"GIT_INDEX_FILE": str(index)}
    try:
        _tracked(workspace, env_index)
        _git_env(workspace, env_index, "add", "-A")
        tree = _git_env(workspace, env_index, "write-tree")
    finally:
        index.unlink(missing_ok=True)
    parent = head(workspace)
    sha = git(workspace, "commit-tree", tree, "-p", parent, "-m", message)
    git(workspace, "update-ref", ref, sha)
    return sha


def _tracked(workspace: Path, env_index: dict[str, str]) -> None:
    """Start a scratch index from HEAD, so a tracked file counts even where .gitignore matches it."""
    try:
        _git_env(workspace, env_index, "read-tree", "HEAD")
    except WorkspaceError:
        pass  # no HEAD to start from: the files alone, as found


def _git_env(workspace: Path, extra: dict[str, str], *args: str) -> str:
    env = git_env() | extra
    proc = subprocess.run(
        ["git", *SAFE_GIT, *args], cwd=workspace, capture_output=True, text=True, env=env, timeout=300
    )
    if proc.returncode != 0:
        reason = (proc.stderr or proc.stdout).strip().splitlines()
        raise WorkspaceError(
            f"{workspace}: git {args[0]} failed: {reason[-1] if reason else proc.returncode}"
        )
    return proc.stdout.strip()


def tree_of(workspace: Path, rev: str) -> str:
    return git(workspace, "rev-parse", f"{rev}^{{tree}}")


def working_tree(workspace: Path) -> str:
    """The tree id the working tree would have if committed now (untracked files included)."""
    index = git_path(workspace, f"longrun-index-probe-{os.getpid()}")
    try:
        _tracked(workspace, {"GIT_INDEX_FILE": str(index)})
        _git_env(workspace, {"GIT_INDEX_FILE": str(index)}, "add", "-A")
        return _git_env(workspace, {"GIT_INDEX_FILE": str(index)}, "write-tree")
    finally:
        index.unlink(missing_ok=True)


def commits_between(workspace: Path, base: str | None, tip: str, limit: int = 20) -> list[Commit]:
    """Commits reachable from `tip` but not from `base`, newest first, at most `limit`."""
    rev = f"{base}..{tip}" if base else tip
    out = git(workspace, "log", f"-n{limit}", "--format=%H%x1f%s", rev, check=False)
    commits = []
    for line in out.splitlines():
        sha, _, subject = line.partition("\x1f")
        commits.append(Commit(sha, subject))
    return commits


def restore(workspace: Path, branch: str, checkpoint_commit: str, keep_ref: str) -> None:
    """Put the workspace back exactly as it was at a checkpoint: the run's branch at the agent's
    HEAD of that moment, and the files (committed or not) as they were.

    Whatever the workspace holds that the checkpoint does not is first kept under `keep_ref`.
    """
    current = git(workspace, "rev-parse", "--abbrev-ref", "HEAD", check=False)
    agent_head = git(workspace, "rev-parse", f"{checkpoint_commit}^")
    if (
        current == branch
        and head(workspace) == agent_head
        and working_tree(workspace) == tree_of(workspace, checkpoint_commit)
    ):
        return
    snapshot(workspace, "longrun: the workspace as found before a restore", keep_ref)
    git(workspace, "checkout", "-q", "-f", branch)
    git(workspace, "reset", "-q", "--hard", agent_head)
    git(workspace, "clean", "-q", "-fd", "-e", PRIVATE_DIR)
    git(workspace, "read-tree", "-u", "--reset", checkpoint_commit)
    git(workspace, "reset", "-q")


def diff(workspace: Path, base: str, tip: str, limit: int) -> tuple[str, bool]:
    """`git diff` from `base` to `tip` (a stat, then the patch), at most `limit` bytes of it, and
    whether it was cut. Longrun's private folder is left out. Reads no more than it keeps."""
    args = ["git", *SAFE_GIT, "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--stat", "--patch"]
    args += [base, tip, "--", ".", f":(exclude){PRIVATE_DIR}"]
    env = git_env()
    try:
        proc = subprocess.Popen(args, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    except FileNotFoundError:
        raise WorkspaceError("git is not installed (longrun keeps checkpoints as git commits)") from None
    assert proc.stdout is not None and proc.stderr is not None
    data = proc.stdout.read(limit + 1)
    cut = len(data) > limit
    if cut:
        proc.kill()
    error = proc.stderr.read().decode(errors="replace").strip()
    proc.wait()
    if not cut and proc.returncode != 0:
        raise WorkspaceError(
            f"{workspace}: git diff failed: {error.splitlines()[-1] if error else proc.returncode}"
        )
    return data[:limit].decode(errors="ignore"), cut


def add_worktree(workspace: Path, folder: Path, branch: str, checkpoint_commit: str) -> None:
    """A new worktree of the repository at `folder`, on a new `branch` at the agent's HEAD of a
    checkpoint, with the checkpoint's files (committed or not) as they were."""
    if folder.exists():
        raise WorkspaceError(f"{folder}: already exists; a fork needs a new folder")
    git(workspace, "worktree", "add", "-q", "-b", branch, str(folder), f"{checkpoint_commit}^")
    git(folder, "read-tree", "-u", "--reset", checkpoint_commit)
    git(folder, "reset", "-q")
