"""The tool calls a seeded session makes (`Call`), and the digests that stand in for real ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One tool call of a model turn, with what it returned; `commit` makes a real git commit."""

    tool: str
    input: dict[str, Any]
    output: str = ""
    is_error: bool = False
    ms: int = 4
    commit: tuple[str, dict[str, str]] | None = None
    interrupted: bool = False
    """The session died while the call ran: no result was recorded."""


def bash_call(command: str, output: str = "", *, is_error: bool = False, ms: int = 420) -> Call:
    return Call("bash", {"command": command}, output, is_error, ms)


def read_call(path: str, output: str) -> Call:
    return Call("read", {"file_path": path}, output, ms=1)


def edit_call(path: str, old: str, new: str, *, commit: tuple[str, dict[str, str]] | None = None) -> Call:
    return Call(
        "edit",
        {"file_path": path, "old_string": old, "new_string": new},
        f"edited {path} (1 replacement(s))",
        ms=2,
        commit=commit,
    )


def write_call(path: str, content: str) -> Call:
    return Call(
        "write",
        {"file_path": path, "content": content},
        f"wrote {len(content.encode())} bytes to {path}",
        ms=1,
    )


def commit_call(message: str, files: dict[str, str]) -> Call:
    return Call(
        "bash", {"command": f'git add -A && git commit -q -m "{message}"'}, "", ms=14, commit=(message, files)
    )


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
