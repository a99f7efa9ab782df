"""The processes a session started, found by parentage, so the CLI and everything it started die
at the deadline: the CLI shares the session's process group, and what it starts may make its own."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def _parents() -> dict[int, int]:
    """Every process's parent: from /proc where there is one, else from `ps`."""
    found: dict[int, int] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            fields = stat[stat.rfind(")") + 2 :].split()
            found[int(entry.name)] = int(fields[1])
        return found
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        pid, _, ppid = line.strip().partition(" ")
        if pid.isdigit() and ppid.strip().isdigit():
            found[int(pid)] = int(ppid.strip())
    return found


def children(pid: int) -> set[int]:
    return {p for p, parent in _parents().items() if parent == pid}


def tree(roots: set[int]) -> set[int]:
    """`roots` and all their descendants alive now."""
    parents = _parents()
    found = {r for r in roots if r in parents}
    grew = True
    while grew:
        more = {p for p, parent in parents.items() if parent in found and p not in found}
        found |= more
        grew = bool(more)
    return found


def kill_tree(roots: set[int]) -> set[int]:
    """SIGKILL `roots` and every descendant; returns the pids signalled. Each is stopped first and
    the tree looked at again, so none starts another between the look and the kill."""
    doomed: set[int] = set()
    while True:
        found = tree(roots | doomed) - doomed
        if not found:
            break
        _signal(found, signal.SIGSTOP)
        doomed |= found
    _signal(doomed, signal.SIGKILL)
    return doomed


def _signal(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
