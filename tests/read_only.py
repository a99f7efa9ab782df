"""Running the CLI against a store it cannot write, two ways (for `test_store.py` and the e2e tamper
tests):

- `filesystem`: the store's folder bind-mounted read-only in a mount namespace of the CLI's own
  (`unshare --mount`, so root only; EROFS, like a read-only disk or a snapshot);
- `permissions`: a copy of the store, its folder and files made read-only with chmod (EACCES).
  Root writes through file modes, so as root the CLI runs without the capabilities that let it
  (`setpriv --bounding-set -dac_override,…`): still root, but held to the modes like anyone.

Either is skipped, saying why, where this machine cannot provide it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

WAYS = ("filesystem", "permissions")

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _can_mount() -> str | None:
    """Why a read-only bind mount cannot be made here (None when it can)."""
    if os.geteuid() != 0:
        return "a bind mount needs root"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = tempfile.mkdtemp()
    try:
        made = subprocess.run(
            ["unshare", "--mount", "sh", "-c", f"mount --bind -o ro {probe} {probe}"],
            capture_output=True,
            text=True,
        )
    finally:
        os.rmdir(probe)
    return None if made.returncode == 0 else f"no mount namespace here: {made.stderr.strip()}"


@contextmanager
def read_only_cli(home: Path, way: str, program: str = "longrun.app.cli") -> Iterator[tuple[Path, Cli]]:
    """(the store's folder as the CLI sees it, a function running the CLI on it read-only);
    `program` is the module run (`longrun.app.tui` for `longrun-ui`)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("LONGRUN_HOME", None)
    if way == "filesystem":
        why = _can_mount()
        if why:
            pytest.skip(f"a read-only file system: {why}")

        def run_mounted(*args: str) -> subprocess.CompletedProcess[str]:
            script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
            command = ["unshare", "--mount", "sh", "-c", script, "sh", str(home)]
            command += [sys.executable, "-m", program, "--home", str(home), *args]
            return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

        yield home, run_mounted
        return
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip(
                "read-only by permissions as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
            )
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    folder = Path(tempfile.mkdtemp(prefix="longrun-read-only-"))
    copy = folder / "store"
    shutil.copytree(home, copy)
    paths = [copy, *copy.rglob("*")]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)

    def run_chmodded(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*prefix, sys.executable, "-m", program, "--home", str(copy), *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    try:
        yield copy, run_chmodded
    finally:
        for path in paths:
            path.chmod(stat.S_IRWXU)
        shutil.rmtree(folder)
