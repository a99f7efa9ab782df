"""A command's stdout and stderr, kept as `command_output` events, bounded whatever it prints.

The first `HEAD_BYTES` of each stream are recorded as they come (a piece at a time, at line ends),
the last `TAIL_BYTES` once the command has ended, with the count of the bytes between them that
were left out. The last lines of stderr are kept apart: they are the reason a failed command gives.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from typing import Any

HEAD_BYTES = 16 * 1024
TAIL_BYTES = 16 * 1024
RECENT_BYTES = 4 * 1024
"""The end of the stream kept for `last_lines`."""
PIECE_BYTES = 2 * 1024
"""A piece of the head is recorded once it is this long, or `PIECE_SECONDS` after its first byte."""
PIECE_SECONDS = 2.0


class OutputKeeper:
    """One stream of the command's output."""

    def __init__(
        self, stream: str, record: Callable[[dict[str, Any]], None], clean: Callable[[str], str]
    ) -> None:
        self.stream = stream
        self.record = record
        """Records one `command_output` event's data."""
        self.clean = clean
        """What every text goes through before it is recorded (the secrets blanked)."""
        self.total = 0
        self.head_left = HEAD_BYTES
        self.piece = ""
        self.piece_since: float | None = None
        self.tail = bytearray()
        self.recent = bytearray()
        self._decode = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        self.recent = (self.recent + data)[-RECENT_BYTES:]
        head, rest = data[: self.head_left], data[self.head_left :]
        if head:
            self.head_left -= len(head)
            if self.piece_since is None:
                self.piece_since = time.monotonic()
            self.piece += self._decode.decode(head, final=self.head_left == 0)
        if rest:
            self.tail = (self.tail + rest)[-TAIL_BYTES:]
        if len(self.piece) >= PIECE_BYTES or self.head_left == 0:
            self.flush()

    def flush(self, final: bool = False) -> None:
        """Record the head's piece so far: up to its last line end, unless `final` or the head is
        full; and, when `final`, the tail."""
        if final and self.head_left:
            self.piece += self._decode.decode(b"", final=True)
        due = self.piece_since is not None and time.monotonic() - self.piece_since >= PIECE_SECONDS
        whole = final or self.head_left == 0
        if self.piece and (whole or due or len(self.piece) >= PIECE_BYTES):
            cut = len(self.piece) if whole else self.piece.rfind("\n") + 1
            if cut == 0 and len(self.piece) >= PIECE_BYTES:
                cut = len(self.piece)  # one long line: record it in pieces
            if cut:
                self.record({"stream": self.stream, "text": self.clean(self.piece[:cut])})
                self.piece = self.piece[cut:]
                self.piece_since = time.monotonic() if self.piece else None
        if final and self.tail:
            left_out = self.total - HEAD_BYTES - len(self.tail)
            text = self.clean(bytes(self.tail).decode(errors="replace"))
            self.record({"stream": self.stream, "text": text, "left_out_bytes": left_out, "last": True})
            self.tail = bytearray()

    def last_lines(self, count: int = 3, chars: int = 300) -> str:
        """The last non-empty lines, joined on one line: the reason a failed command gives."""
        lines = [line.strip() for line in bytes(self.recent).decode(errors="replace").splitlines()]
        said = " | ".join([line for line in lines if line][-count:])
        said = self.clean(said)
        return said if len(said) <= chars else "..." + said[-(chars - 3) :]
