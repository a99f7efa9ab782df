"""The CLI's own transcript of a session, kept in longrun's store with the checkpoint.

Claude Code writes each conversation as JSON lines under its config folder and can go on from
one (`resume`). The SDK mirrors those lines to a `SessionStore` while the CLI runs, and on a
resume writes them back into a fresh config folder for the CLI; this is that store, in memory
for one session. At a pause or at the session's end its contents become a kept conversation
(one record, `KIND`), so the next session, a rewind, a fork or another machine goes on with the
same Claude conversation instead of whatever the user's own `~/.claude` holds by then.
"""

from __future__ import annotations

from typing import Any

KIND = "claude_code_session"
"""The `type` of the one record a kept Claude Code conversation holds."""


def is_claude_record(messages: list[dict[str, Any]]) -> bool:
    return len(messages) == 1 and isinstance(messages[0], dict) and messages[0].get("type") == KIND


class TranscriptStore:
    """The SDK's `SessionStore` protocol, over one session's transcripts (the main one and any
    subagents'), keyed by session id and subpath: the project key is left out on purpose, so a
    transcript kept for one workspace path resumes in another (a fork, another machine)."""

    def __init__(self, kept: dict[str, Any] | None = None) -> None:
        self._entries: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._seen: set[tuple[tuple[str, str], str]] = set()
        self.session_id: str | None = None
        if kept is not None:
            self.session_id = str(kept["claude_session_id"])
            for subpath, entries in dict(kept.get("transcripts") or {}).items():
                self._take((self.session_id, subpath), list(entries))

    def _take(self, key: tuple[str, str], entries: list[dict[str, Any]]) -> None:
        kept = self._entries.setdefault(key, [])
        for entry in entries:
            uuid = entry.get("uuid") if isinstance(entry, dict) else None
            if isinstance(uuid, str):
                if (key, uuid) in self._seen:  # the SDK's idempotency key
                    continue
                self._seen.add((key, uuid))
            kept.append(entry)

    async def append(self, key: Any, entries: list[dict[str, Any]]) -> None:
        subpath = key.get("subpath") or ""
        if not subpath and self.session_id is None:
            self.session_id = key["session_id"]
        self._take((key["session_id"], subpath), entries)

    async def load(self, key: Any) -> list[dict[str, Any]] | None:
        entries = self._entries.get((key["session_id"], key.get("subpath") or ""))
        return [dict(e) for e in entries] if entries else None

    async def list_subkeys(self, key: Any) -> list[str]:
        return [sub for (sid, sub) in self._entries if sid == key["session_id"] and sub]

    def record(self, waiting: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        """The kept conversation's one record (None when the CLI wrote nothing): the Claude session
        id, its transcripts, and the calls that wait for a person, if it paused."""
        if self.session_id is None or not self._entries.get((self.session_id, "")):
            return None
        transcripts = {sub: list(e) for (sid, sub), e in self._entries.items() if sid == self.session_id}
        return {
            "type": KIND,
            "claude_session_id": self.session_id,
            "transcripts": transcripts,
            "waiting": list(waiting or []),
        }
