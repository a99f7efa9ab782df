"""A run's head (`chain_head`) and its anchor outside the database, against the log's last event."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longrun.store import anchors
from longrun.store.integrity.report import Break, BreakKind, FieldChange


@dataclass(frozen=True)
class Anchor:
    path: Path
    size: int | None
    """How many of its bytes to read (None: the file is not there)."""


def check_head_and_anchor(
    raw: Any,
    run_id: str,
    log_last: tuple[int, str],
    head: tuple[int, str] | None,
    has_heads: bool,
    anchor: Anchor,
    breaks: list[Break],
    notes: list[str],
) -> tuple[int | None, int]:
    """Compare the head and the anchor with the log's last event; returns (newest anchored seq, lines)."""
    events, last_hash = log_last
    claims: list[str] = []
    if head is None and has_heads and events:
        breaks.append(
            Break(
                BreakKind.head_missing,
                run_id,
                f"the store keeps no head for this run's log of {events} events",
                "chain_head",
                run_id,
            )
        )
    elif head is not None:
        if head[0] > events:
            claims.append(f"the run's head says {head[0]} events")
        elif head[0] < events:
            breaks.append(
                Break(
                    BreakKind.head_rewritten,
                    run_id,
                    f"the run's head says {head[0]} events, the log has {events}",
                    "chain_head",
                    run_id,
                    changes=(FieldChange("events", head[0], events),),
                )
            )
        elif head[1] != last_hash:
            breaks.append(
                Break(
                    BreakKind.head_rewritten,
                    run_id,
                    f"the run's head says event {events} has hash {head[1][:12]}…, "
                    f"the log's has {last_hash[:12]}…",
                    "chain_head",
                    run_id,
                    seq=events,
                    changes=(FieldChange("hash", head[1], last_hash),),
                )
            )
    path = anchor.path
    anchored: int | None = None
    count = 0
    if anchor.size is None:
        if has_heads and events:
            breaks.append(
                Break(
                    BreakKind.anchor_missing,
                    run_id,
                    f"{path} is not there, so a tail cut together with its head cannot be ruled out",
                    "anchor",
                    run_id,
                )
            )
        elif events:
            notes.append("anchor not checked: the store was never brought up to schema 3")
    else:
        anchored, count = _check_anchor(raw, run_id, anchor, events, breaks)
        if anchored is not None and anchored > events:
            claims.append(f"the anchor outside the store says {anchored}")
    if claims:
        top = max(_claimed(head, anchored))
        gone = f"event {events + 1} is gone" if top == events + 1 else f"events {events + 1}–{top} are gone"
        rewritten = "" if head is None or head[0] > events else " (its head was rewritten to match)"
        breaks.append(
            Break(
                BreakKind.tail_truncated,
                run_id,
                f"{' and '.join(claims)}, the log has {events}: {gone}{rewritten}",
                "event",
                seq=events + 1,
            )
        )
    return anchored, count


def _claimed(head: tuple[int, str] | None, anchored: int | None) -> list[int]:
    return [n for n in (head[0] if head else None, anchored) if n is not None]


ANCHOR_CHUNK = 500


def _check_anchor(
    raw: Any, run_id: str, anchor: Anchor, events: int, breaks: list[Break]
) -> tuple[int | None, int]:
    """Check every anchored (seq, hash) against the log, a chunk of lines at a time (an anchor has
    a line per commit: it is read in constant memory). Returns (newest anchored seq, lines)."""
    newest: int | None = None
    count = 0
    first_mismatch: tuple[int, str, str] | None = None
    mismatches = 0
    first_damaged: int | None = None
    damaged = 0

    def check(chunk: list[anchors.AnchorLine]) -> None:
        nonlocal first_mismatch, mismatches
        wanted = sorted({a.seq for a in chunk if a.seq is not None and a.seq <= events})
        if not wanted:
            return
        marks = ",".join("?" * len(wanted))
        stored = dict(
            raw.execute(
                f"SELECT seq, hash FROM event WHERE run_id = ? AND seq IN ({marks})", (run_id, *wanted)
            )
        )
        for a in chunk:
            if a.seq is not None and a.seq <= events and stored.get(a.seq) != a.hash:
                mismatches += 1
                found = (a.seq, a.hash, stored.get(a.seq) or "nothing")
                first_mismatch = found if first_mismatch is None else min(first_mismatch, found)

    chunk: list[anchors.AnchorLine] = []
    path = anchor.path
    for line in anchors.read(path, anchor.size):
        count += 1
        if line.seq is None:
            damaged += 1
            first_damaged = first_damaged or line.number
            continue
        newest = line.seq if newest is None else max(newest, line.seq)
        chunk.append(line)
        if len(chunk) >= ANCHOR_CHUNK:
            check(chunk)
            chunk = []
    check(chunk)
    if first_damaged is not None:
        more = f" (and {damaged - 1} more)" if damaged > 1 else ""
        breaks.append(
            Break(
                BreakKind.anchor_damaged,
                run_id,
                f"line {first_damaged} of {path} is not `SEQ HASH`{more}",
                "anchor",
                run_id,
            )
        )
    if first_mismatch is not None:
        seq, anchored_hash, stored_hash = first_mismatch
        more = f" ({mismatches} anchored events differ)" if mismatches > 1 else ""
        shown = stored_hash[:12] + ("…" if stored_hash != "nothing" else "")
        breaks.append(
            Break(
                BreakKind.anchor_mismatch,
                run_id,
                f"history rewritten: the anchor outside the store says event {seq} has hash "
                f"{anchored_hash[:12]}…, the log's has {shown}{more}",
                "event",
                seq=seq,
                changes=(FieldChange("hash", stored_hash, anchored_hash),),
            )
        )
    return newest, count
