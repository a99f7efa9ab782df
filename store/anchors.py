"""Chain heads anchored outside the database: one append-only file per run beside the store.

A run's head row lives in the same file as its log, so whoever can cut the log's tail can rewrite
the head to match. The anchor is a second witness, `<home>/anchors/<run id>`: after every
committed write transaction that appended to a run, one line `SEQ HASH` (the run's last event
then) is appended to it. `longrun verify` requires every anchored hash to be the hash of that
event in the log, and the log to reach the newest anchored seq.

The line is written after the commit, and without an fsync: the database is the record and is
synced on every commit (synchronous=FULL); the anchor is a witness that may lag it. A crash
between the commit and the write, or a power loss that takes the file's last lines, leaves the
anchor behind the log, which `verify` accepts as long as the log extends it. A lagging anchor only
covers less of the tail; it can never make a whole log look tampered with. A write that fails (a
full disk, a folder that cannot be written) is skipped for the same reason.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

ANCHORS_DIR = "anchors"

PENDING = "longrun_pending_anchors"
"""The key, in a connection's `info`, of the heads its open transaction appended: {run id: (seq, hash)}."""

_LINE = re.compile(r"(\d+) ([0-9a-f]{64})")
_TORN = re.compile(r"\d+( [0-9a-f]{0,63})?")


def anchor_path(home: Path, run_id: str) -> Path:
    """The anchor file of a run (its id, quoted so that it is one plain file name)."""
    return home / ANCHORS_DIR / quote(run_id, safe="-_").replace(".", "%2E")


def run_of(path: Path) -> str:
    """The run id an anchor file is named for."""
    return unquote(path.name)


class AnchorWriter:
    """Appends heads to the anchor files of one store, keeping the last few files open (an open
    and a close per append would cost more than the head's own row)."""

    KEEP_OPEN = 32

    def __init__(self, home: Path) -> None:
        self.home = home
        self._open: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, heads: Mapping[str, tuple[int, str]]) -> None:
        """Append each run's head to its anchor file (best effort: see the module's docstring).

        Under the writer's lock, so that a file closed to make room is never written by another
        thread through its reused descriptor."""
        with self._lock:
            for run_id, (seq, digest) in heads.items():
                try:
                    os.write(self._fd(run_id), f"{seq} {digest}\n".encode())
                except OSError:
                    fd = self._open.pop(run_id, None)
                    if fd is not None:
                        os.close(fd)

    def _fd(self, run_id: str) -> int:
        fd = self._open.get(run_id)
        if fd is not None:
            self._open.move_to_end(run_id)
            return fd
        path = anchor_path(self.home, run_id)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o644)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")  # a line torn by a crash stays a line of its own
        self._open[run_id] = fd
        while len(self._open) > self.KEEP_OPEN:
            os.close(self._open.popitem(last=False)[1])
        return fd

    def close(self) -> None:
        with self._lock:
            fds, self._open = list(self._open.values()), OrderedDict()
        for fd in fds:
            os.close(fd)


@dataclass(frozen=True)
class AnchorLine:
    """One line of an anchor file: the seq and hash of a run's last event after a commit, or,
    when `seq` is None, a line that is not `SEQ HASH` (`text` holds what it says)."""

    number: int
    seq: int | None
    hash: str
    text: str = ""


def read(path: Path, size: int | None = None) -> Iterator[AnchorLine]:
    """The lines of an anchor file, a line at a time (only its first `size` bytes, when given:
    lines appended since are left out). What a crash can leave is skipped: a line cut short (the
    start of `SEQ HASH`) and the NUL bytes a power loss may leave in place of lines it lost."""
    left = size
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if left is not None:
                if left <= 0:
                    return
                raw, left = raw[:left], left - len(raw)
            text = raw.rstrip(b"\n").lstrip(b"\0").decode(errors="replace")
            if not text or _TORN.fullmatch(text):
                continue
            match = _LINE.fullmatch(text)
            if match is None:
                yield AnchorLine(number, None, "", text[:80])
            else:
                yield AnchorLine(number, int(match.group(1)), match.group(2))


def anchored_runs(home: Path) -> list[str]:
    """The runs that have an anchor file."""
    folder = home / ANCHORS_DIR
    if not folder.is_dir():
        return []
    return sorted(run_of(p) for p in folder.iterdir() if p.is_file())
