"""The judge's own tree: a checkpoint's commit written out from longrun's mirror into a folder under
longrun's home, and the environment every check runs in there.

Nothing here reads the live workspace. The files come from the mirror's objects, byte for byte:
no `.gitattributes` conversion, no filter, no hook, no replace ref applies (`git archive` would
honour `export-ignore`, which a worker could use to hide its tests from the judge). Submodules are
not written. A symbolic link that resolves outside the tree is left out and named in the evidence,
so a committed link cannot lead a check to files the judge does not own.

Checks run with a fresh environment (`judge_env`): longrun's own, less credentials and Python's
path variables, `PATH` without entries inside the tree or the workspace, and Python started with
the safe path (`PYTHONSAFEPATH`) plus a small `sitecustomize` of the judge's that puts the tree at
the end of `sys.path`: a module in the tree can be imported, but it cannot shadow an installed one
(a `pytest.py` does not replace pytest), and no path into the live workspace (an editable install
of the project) is kept. Compiled bytecode (`__pycache__/*.pyc`) is not written out: committed, it
could stand in for its source, which is what is judged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longrun.evaluators.command import clean_env
from longrun.scheduler.session import mirror
from longrun.store.errors import WorkspaceError

JUDGING_DIR = "judging"
"""Under longrun's home: the judge's trees while they are judged, and its Python start-up file."""
TREE_ENV = "LONGRUN_JUDGED_TREE"
LIVE_ENV = "LONGRUN_LIVE_WORKSPACE"

SITECUSTOMIZE = '''"""longrun's judge: the judged tree goes last on sys.path, the live workspace nowhere."""
import os
import sys


def _inside(path, root):
    try:
        return os.path.commonpath([os.path.realpath(path), root]) == root
    except ValueError:
        return False


def _arrange():
    tree = os.environ.get("LONGRUN_JUDGED_TREE")
    if not tree:
        return
    tree = os.path.realpath(tree)
    live = os.environ.get("LONGRUN_LIVE_WORKSPACE")
    live = os.path.realpath(live) if live else None
    here = os.path.dirname(os.path.abspath(__file__))
    kept = [p for p in sys.path if p and os.path.abspath(p) != here and not (live and _inside(p, live))]
    extra = []
    argv = getattr(sys, "argv", None) or [""]
    if argv[0] and argv[0] not in ("-c", "-m") and os.path.isfile(argv[0]):
        extra.append(os.path.dirname(os.path.abspath(argv[0])))
    cwd = os.getcwd()
    if _inside(cwd, tree):
        extra.append(cwd)
    extra.append(tree)
    for path in extra:
        if path not in kept:
            kept.append(path)
    sys.path[:] = kept


_arrange()
'''


@dataclass
class JudgedTree:
    """A checkpoint's commit as the judge wrote it out."""

    path: Path
    commit: str
    tree: str
    """The git tree id of the commit: what was judged."""
    files: frozenset[str] = frozenset()
    """Every path written (tree-relative, POSIX), symbolic links left out excepted."""
    links_left_out: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    """Pinned harness files put back before judging (see `judging.harness`)."""

    def evidence(self) -> dict[str, Any]:
        found: dict[str, Any] = {"commit": self.commit, "tree": self.tree, "where": "the judge's own tree"}
        if self.links_left_out:
            found["links_left_out"] = self.links_left_out[:20]
        if self.restored:
            found["restored"] = self.restored[:50]
        return found


def judging_home(home: Path) -> Path:
    folder = Path(home) / JUDGING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def judge_tree(home: Path, workspace: Path, run_id: str, commit: str) -> Iterator[JudgedTree]:
    """The commit written out into a new folder of the judge's, removed afterwards."""
    mirror.ensure_kept(home, workspace, run_id, commit)
    folder = Path(tempfile.mkdtemp(prefix=f"{commit[:10]}-", dir=judging_home(home)))
    try:
        tree_id = mirror.mgit(home, "rev-parse", f"{commit}^{{tree}}")
        files, left_out = write_tree(home, commit, folder)
        yield JudgedTree(folder, commit, tree_id, files, left_out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_tree(home: Path, commit: str, folder: Path) -> tuple[frozenset[str], list[str]]:
    """Write every file of `commit` under `folder` from the mirror's objects; return the paths
    written and the symbolic links left out because they resolve outside `folder`."""
    listing = mirror.mgit(home, "ls-tree", "-r", "-z", "--full-tree", commit)
    root = folder.resolve()
    by_blob: dict[str, list[tuple[str, str]]] = {}
    for record in listing.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, sha = meta.split()
        if kind != "blob" or _bytecode(path):
            continue
        if ".." in Path(path).parts or not (root / path).resolve().is_relative_to(root):
            raise WorkspaceError(f"commit {commit[:12]} holds a path outside its tree: {path!r}")
        by_blob.setdefault(sha, []).append((mode, path))
    links: list[tuple[Path, str, str]] = []
    for sha, data in _blobs(home, list(by_blob)):
        for mode, path in by_blob[sha]:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if mode == "120000":
                links.append((target, data.decode(errors="surrogateescape"), path))
                continue
            target.write_bytes(data)
            if mode == "100755":
                target.chmod(0o755)
    left_out = []
    for target, pointing, _ in links:  # after every file, so nothing is written through a link
        os.symlink(pointing, target)
    for target, _, path in links:
        resolved = os.path.realpath(target)
        if resolved != str(root) and not resolved.startswith(str(root) + os.sep):
            target.unlink()
            left_out.append(path)
    kept = frozenset(path for entries in by_blob.values() for _, path in entries) - set(left_out)
    return kept, left_out


def _bytecode(path: str) -> bool:
    parts = path.split("/")
    return len(parts) >= 2 and parts[-2] == "__pycache__" and parts[-1].endswith((".pyc", ".pyo"))


def _blobs(home: Path, shas: list[str]) -> Iterator[tuple[str, bytes]]:
    """Each blob's contents, one at a time, from one `git cat-file --batch` (the names are fed
    from a thread, so a large tree never holds more than one file in memory)."""
    if not shas:
        return
    proc = subprocess.Popen(
        ["git", *mirror.SAFE_GIT, "--git-dir", str(mirror.mirror_path(home)), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=mirror.git_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def feed() -> None:
        try:
            for sha in shas:
                stdin.write(f"{sha}\n".encode())
        except BrokenPipeError:
            pass
        finally:
            stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        for sha in shas:
            header = stdout.readline().split()
            if len(header) < 3 or header[1] != b"blob":
                raise WorkspaceError(f"object {sha[:12]} is missing from longrun's mirror")
            data = stdout.read(int(header[2]))
            stdout.read(1)  # the newline after each object
            yield sha, data
    finally:
        proc.kill()
        proc.wait()
        feeder.join(timeout=10)


def python_start(home: Path) -> Path:
    """The judge's folder holding its `sitecustomize.py` (rewritten when it differs)."""
    folder = judging_home(home) / "python"
    folder.mkdir(exist_ok=True)
    startup = folder / "sitecustomize.py"
    if not startup.is_file() or startup.read_text() != SITECUSTOMIZE:
        partial = startup.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(SITECUSTOMIZE)
        partial.replace(startup)
    return folder


def judge_env(home: Path, tree: Path, workspace: Path) -> dict[str, str]:
    """The environment a check runs in, in the judge's tree (see the module's docstring)."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("PYTHON")}
    bad = [Path(tree).resolve(), Path(workspace).resolve()]
    kept = []
    for entry in env.get("PATH", os.defpath).split(os.pathsep):
        if not entry or not os.path.isabs(entry):
            continue
        resolved = Path(entry).resolve()
        if any(resolved.is_relative_to(b) for b in bad):
            continue
        kept.append(entry)
    python_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([python_dir, *[p for p in kept if p != python_dir]])
    env["PYTHONSAFEPATH"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = str(python_start(home))
    env[TREE_ENV] = str(tree)
    env[LIVE_ENV] = str(workspace)
    return env
