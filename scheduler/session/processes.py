"""Whether a process still runs: for the supervisor's reaping and the sandbox's sweep alike."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int | None) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not count)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
